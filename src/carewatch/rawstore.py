"""The immutable raw landing store: one file per source, period and version, named by content.

``<CAREWATCH_HOME>/raw/<source>/<period>/<sha256>.<ext>``. A file is written once, through a
temporary file and an atomic rename, then made read-only; identical content is never stored
twice and nothing is ever overwritten. A revision of a publication is a new file beside the
old one.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from carewatch import paths


def looks_like_html(head: bytes) -> bool:
    """Whether the first bytes of a file are a web page (what a publisher's site serves, or a
    browser saves, in place of a moved file): the fetch refuses it, the parsers name it."""
    head = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:200]


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks (a raw file or a backup's copy of any file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def path_for(source: str, period: str, sha256: str, ext: str, root: Path | None = None) -> Path:
    return Path(root or paths.raw_store_dir()) / source / period / f"{sha256}.{ext}"


def put(source: str, period: str, data: bytes, ext: str, root: Path | None = None) -> Path:
    """Store ``data``; returns its path. Storing the same content again is a no-op."""
    digest = sha256_of(data)
    target = path_for(source, period, digest, ext, root)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def in_this_store(source: str, period: str, recorded: str | Path) -> Path:
    """The file ``raw_manifest.raw_path`` recorded, in this home's raw store: found by source,
    period and name (its sha256), wherever the home was when it was stored."""
    return paths.raw_store_dir() / source / period / Path(recorded).name


def damaged_files(root: Path | None = None) -> list[Path]:
    """The stored files whose content no longer hashes to the sha256 they are named by (a
    damaged disk, a file edited by hand), under ``root`` (default the raw store). Files written
    aside before their rename (hidden names) are not stored files yet."""
    import re

    base = Path(root or paths.raw_store_dir())
    if not base.is_dir():
        return []
    out = []
    for path in sorted(base.rglob("*")):
        name = re.fullmatch(r"([0-9a-f]{64})\..+", path.name)
        if name and path.is_file() and sha256_file(path) != name.group(1):
            out.append(path)
    return out


def listing(root: Path | None = None) -> dict[str, str]:
    """Every stored file (relative path -> sha256 of its bytes), for checks that nothing changed."""
    base = Path(root or paths.raw_store_dir())
    if not base.exists():
        return {}
    return {str(p.relative_to(base)): sha256_of(p.read_bytes()) for p in sorted(base.rglob("*")) if p.is_file()}
