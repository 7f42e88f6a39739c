"""The pins of a production lock for the packages the development lock does not hold (`make prodlock`).

Usage: python scripts/held_pins.py constraints-production.txt constraints.txt
Prints those `name==version` lines: passed to pip as constraints beside the development lock,
they keep a regeneration from moving packages the change did not ask to move.
"""

from __future__ import annotations

import re
import sys


def pins(path: str) -> dict[str, str]:
    """name (normalised as PEP 503 does) -> the pin line, of a lock file's `name==version` lines."""
    out = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith("#") and "==" in line:
            out[re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()] = line
    return out


def main(production: str, development: str) -> int:
    held = pins(development)
    for name, line in sorted(pins(production).items()):
        if name not in held:
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
