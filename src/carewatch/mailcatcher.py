"""A real SMTP server on localhost that keeps every message it receives as a ``.eml`` file.

``carewatch run`` and ``make airflow`` start one so alerts have somewhere to go on a laptop
(the messages land in ``$CAREWATCH_HOME/mail/``); the tests use it to read the alerts back.
Production uses a real mail server (or the compose stack's Mailpit) through the same Airflow
connection.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import socket
from pathlib import Path
from typing import Iterator

from carewatch import paths


class _SaveToDirectory:
    def __init__(self, directory: Path):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.directory.mkdir(parents=True, exist_ok=True)
        index = len(list(self.directory.glob("*.eml"))) + 1
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        del message["X-Envelope-To"]
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        target = self.directory / f"{index:04d}.eml"
        target.with_suffix(".tmp").write_bytes(message.as_bytes())
        target.with_suffix(".tmp").replace(target)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connection_uri(port: int) -> str:
    """``AIRFLOW_CONN_SMTP_DEFAULT`` for the local catcher (plain SMTP, no TLS, no login)."""
    return json.dumps({
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 1},
    })


@contextlib.contextmanager
def catch_mail(directory: Path | None = None, port: int | None = None) -> Iterator[tuple[int, Path]]:
    """Run the catcher while the block runs; yields (port, directory of .eml files)."""
    from aiosmtpd.controller import Controller

    directory = Path(directory or paths.home() / "mail")
    directory.mkdir(parents=True, exist_ok=True)
    controller = Controller(_SaveToDirectory(directory), hostname="127.0.0.1", port=port or free_port())
    controller.start()
    try:
        yield controller.port, directory
    finally:
        controller.stop()


def messages(directory: Path) -> list[email.message.EmailMessage]:
    """Every message caught so far, oldest first."""
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(Path(directory).glob("*.eml"))]


def body_text(message) -> str:
    """The message's HTML (or text) body as a string."""
    part = message.get_body(preferencelist=("html", "plain"))
    return part.get_content() if part is not None else ""
