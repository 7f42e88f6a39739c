"""The README and docs/production.md against the code: what a newcomer or the duty engineer
follows literally (every environment variable the code reads, every path a run writes in its
home, every `carewatch` command line they show)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from carewatch import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PRODUCTION = (ROOT / "docs" / "production.md").read_text()
CODE = [p for folder in ("src", "dags", "plugins") for p in (ROOT / folder).rglob("*.py")]


def test_every_environment_variable_the_code_reads_is_named_in_the_readme():
    read = set()
    for path in CODE:
        text = path.read_text()
        read |= set(re.findall(r"""(?:environ\.get|getenv|environ\[|_env_path)\(?\s*["'](CAREWATCH_[A-Z_]+)["']""", text))
    assert {"CAREWATCH_HOME", "CAREWATCH_ENV"} <= read  # the pattern finds them
    missing = sorted(v for v in read if f"`{v}`" not in README)
    assert not missing, f"read by the code, not named in README.md: {missing}"


def test_every_top_level_path_a_run_writes_in_its_home_is_in_the_outputs_table():
    written = set()
    for path in CODE:
        written |= set(re.findall(r"""home(?:\(\))? / ["']([^"'./][^"'/]*)["']""", path.read_text()))
    assert {"raw", "runs", "reports"} <= written  # the pattern finds them
    section = README.split("## Where outputs land", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `var/([^/`<]+)", section, flags=re.M))
    missing = sorted(written - listed)
    assert not missing, f"written under the home, not in README's 'Where outputs land' table: {missing}"


def test_every_command_is_in_the_readme():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = sorted(c for c in commands if not re.search(rf"carewatch {re.escape(c)}\b", README))
    assert not missing, f"carewatch commands README.md never shows: {missing}"


def _command_lines(text: str) -> list[str]:
    """Each `carewatch ...` command of a fenced code block, or given past the image's entrypoint
    in docs/production.md (`--entrypoint carewatch airflow-worker ...`, `airflow-worker carewatch
    ...`), without its comment and its `[optional ...]` notes."""
    lines = []
    for language, block in re.findall(r"```([a-z]*)\n(.*?)```", text, flags=re.S):
        for line in block.splitlines() if language in ("", "bash") else []:
            line = re.split(r"\s+#(?:\s|$)", line, maxsplit=1)[0].strip()
            line = re.sub(r"^(?:\.venv/bin/)?carewatch ", "", line) if re.match(r"(?:\.venv/bin/)?carewatch ", line) else \
                re.sub(r"^docker compose .*?airflow-worker (?:carewatch )?", "", line) if re.search(r"airflow-worker (?:carewatch |restore )", line) else None
            if line is not None:
                lines.append(re.sub(r"\[[^\]]*\]", "", line).strip())
    return lines


@pytest.mark.parametrize("doc", ["README.md", "docs/production.md"])
def test_every_carewatch_command_line_the_docs_show_parses(doc):
    lines = _command_lines(README if doc == "README.md" else PRODUCTION)
    assert len(lines) >= (15 if doc == "README.md" else 3)
    parser = cli.build_parser()
    refused = []
    for line in lines:
        try:
            parser.parse_args(shlex.split(line))
        except SystemExit:
            refused.append(line)
    assert not refused, f"{doc}: command lines carewatch refuses: {refused}"



def test_every_docker_compose_exec_whose_output_is_kept_has_no_terminal():
    """`docker compose exec` gives the command a terminal unless `-T`: a dump redirected to a file
    (pg_dump) or a file fed in (psql) then passes through it, line endings rewritten. Every
    pg_dump the production doc shows writes a file."""
    commands = [c for c in re.findall(r"docker compose exec [^`\n]*(?:\n[^`\n]+)?", PRODUCTION) if re.search(r"[<>|]", c)]
    assert any("pg_dump" in c for c in commands) and any("psql" in c for c in commands)
    assert all(c.startswith("docker compose exec -T ") for c in commands), [c for c in commands if "-T" not in c]
    for dump in re.findall(r"[^`\n]*pg_dump[^`]*", PRODUCTION):
        assert "exec -T" in dump and ">" in dump, dump
