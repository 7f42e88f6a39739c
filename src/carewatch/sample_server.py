"""A small local HTTP server for the embedded sample publications.

It serves ``data/samples/`` (or any directory) on 127.0.0.1 with ETag (sha256 of the file)
and Last-Modified headers, answers conditional requests with 304, and sends the content
type of each format, so the pipeline fetches the samples exactly as it fetches real
publications: over real HTTP.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path
from typing import Iterator

from carewatch import paths
from carewatch.errors import CarewatchError

CONTENT_TYPES = {".xls": "application/vnd.ms-excel", ".csv": "text/csv", ".parquet": "application/octet-stream"}


class SampleHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **CONTENT_TYPES}

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_file():
            etag = '"' + hashlib.sha256(path.read_bytes()).hexdigest() + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return None
            self._etag = etag
        return super().send_head()

    def end_headers(self):
        etag = getattr(self, "_etag", None)
        if etag:
            self.send_header("ETag", etag)
            self._etag = None
        super().end_headers()

    def log_message(self, format, *args):  # quiet: the pipeline logs what it fetched
        pass


def port_number(text: str) -> int:
    """``--port``: a TCP port, 0 to 65535 (0: any free port, the URL printed says which)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535; 0 serves on any free port)")
    return port


def remembered_port() -> Path:
    """Where the local runs keep the port the samples were last served on."""
    return paths.home() / "samples-port.txt"


@contextlib.contextmanager
def serve_samples(directory: Path | None = None, port: int = 0, remember: bool = False) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 in a background thread; yields the base URL.

    ``remember``: serve on the port the last such run used (``samples-port.txt`` under
    ``CAREWATCH_HOME``) when it is free, else on any free port, and remember it. The sample
    URLs then stay the same from run to run, as the publishers' do, so a refusal met again at
    the same URL is recognised as one already emailed (``fetch_refusals_reported``)."""
    handler = partial(SampleHandler, directory=str(directory or paths.samples_dir()))
    keep = remembered_port()
    if remember and not port and keep.is_file() and keep.read_text().strip().isdigit():
        port = int(keep.read_text())
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except (OSError, OverflowError) as err:  # taken, or a remembered number that is no port
        if not remember:
            raise CarewatchError(f"cannot serve the samples on 127.0.0.1:{port}: {err.strerror or err}") from err
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # any free port
    if remember:
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(f"{server.server_address[1]}\n")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Serve the embedded sample publications over HTTP")
    ap.add_argument("--port", type=port_number, default=8765, help="0 to 65535; 0: any free port (default 8765)")
    ap.add_argument("--directory", type=Path, default=None)
    args = ap.parse_args(argv)
    with serve_samples(args.directory, args.port) as url:
        print(f"serving {args.directory or paths.samples_dir()} at {url} (Ctrl-C to stop)")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
