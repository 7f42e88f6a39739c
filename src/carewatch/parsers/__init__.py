"""One parser per publication format. ``parse(source, path)`` is what the DAG and the CLI call.

Each parser module registers itself with ``@register("<parser name>")`` and exposes a
function ``(path: Path, period: str | None) -> pandas.DataFrame`` returning the tidy schema
documented in ``docs/data-contract.md``. Parsers raise :class:`carewatch.errors.ParseError`
(one clear line naming file, source and problem) on anything they cannot read.

``period`` is the period the caller asked for ("YYYY-MM" for monthly sources, "YYYY" for a
mid-year, "YYYY-YY" financial year for annual sources) or ``None``. Parsers report the
period they find *inside* the file; they do not silently trust the argument. Checking the
two agree is the data-quality layer's job (expectation "period inside the file equals the
period requested"), except that parsers raise if a file holds no recognisable period.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import pandas as pd

from carewatch.errors import ParseError

Parser = Callable[[Path, "str | None"], pd.DataFrame]

_REGISTRY: dict[str, Parser] = {}

# parser name -> module that defines it (imported lazily, so importing this package is cheap)
_MODULES = {
    "dtoc_la": "carewatch.parsers.dtoc_la",
    "dtoc_provider": "carewatch.parsers.dtoc_provider",
    "dtoc_national": "carewatch.parsers.dtoc_national",
    "ascof": "carewatch.parsers.ascof",
    "ons_mye": "carewatch.parsers.ons_mye",
    "hes_aggregate": "carewatch.parsers.hes",
}


def register(name: str) -> Callable[[Parser], Parser]:
    def decorator(func: Parser) -> Parser:
        _REGISTRY[name] = func
        return func

    return decorator


# the libraries that read the workbooks and write the parsed files
READER_LIBRARIES = ("pandas", "numpy", "python-calamine", "pyarrow")


_PACKAGE = Path(__file__).resolve().parent


def _module_file(module: str) -> Path:
    return _PACKAGE / f"{module.rsplit('.', 1)[-1]}.py"


@functools.lru_cache(maxsize=None)
def fingerprint(parser: str) -> str:
    """A short hash of everything ``parser``'s output depends on besides the raw file: its own
    module, the package's shared modules (this one, ``csvtext``: every module that is not
    another parser's), the geography module and its reference files, and the versions of the
    libraries that read and write (``READER_LIBRARIES``). Parsed files are named by it (with the
    raw file's sha256), so a fix to a parser or to what it shares, a geography fix or a library
    upgrade re-parses the files it read; another parser's change, or a new parser, does not.
    A parser module imports no other parser's module (a test checks), so nothing it runs is
    left out."""
    from carewatch import paths

    if parser not in _MODULES:
        raise KeyError(f"unknown parser {parser!r}; known: {', '.join(names())}")
    others = {_module_file(module) for name, module in _MODULES.items() if name != parser}
    inputs = [*(path for path in sorted(_PACKAGE.glob("*.py")) if path not in others),
              _PACKAGE.parent / "geography.py", *sorted((paths.config_dir() / "geography").glob("*.csv"))]
    digest = hashlib.sha256()
    for path in inputs:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for library in READER_LIBRARIES:
        digest.update(f"{library}=={version(library)}".encode() + b"\0")
    return digest.hexdigest()[:12]


def names() -> list[str]:
    return sorted(_MODULES)


def get(name: str) -> Parser:
    if name not in _MODULES:
        raise KeyError(f"unknown parser {name!r}; known: {', '.join(names())}")
    if name not in _REGISTRY:
        importlib.import_module(_MODULES[name])
    return _REGISTRY[name]


def parse(parser: str, path: str | Path, period: str | None = None) -> pd.DataFrame:
    """Parse one local file with the named parser. Raises ParseError on bad input."""
    path = Path(path)
    if not path.is_file():
        raise ParseError(parser, str(path), "no such file")
    if path.stat().st_size == 0:
        raise ParseError(parser, str(path), "file is empty")
    from carewatch import rawstore

    with path.open("rb") as handle:
        if rawstore.looks_like_html(handle.read(512)):  # a web page saved under the file's name
            raise ParseError(parser, str(path), "an HTML page, not the publication's file")
    return get(parser)(path, period)
