"""Backups of a carewatch home: what could not be fetched or computed again.

``carewatch backup [DEST]`` (and the ``backup`` DAG) writes ``DEST/<made at, UTC>/``:

- ``warehouse.duckdb`` (and its ``.wal``, if a writer left one): the warehouse as one
  consistent state, copied while the backup holds it open read-only, so no pipeline task can
  write it meanwhile (a task that needs to write waits, as for an analyst's session: the copy
  takes about a second per 500 MB). It holds what no publisher can give back: which version of
  each period was loaded when (``as-of``), the rejections, the fetch and validation history,
  the restatements and the configuration each analysis used.
- the folders of :data:`KEPT`: the raw store (every version of every download, some no longer
  published), the refused downloads, the reports and exports as published (with their
  superseded copies), the Data Docs and validation results, the ingest run summaries and the
  alerts still waiting for the mail server. They are copied after the warehouse: a file may be
  newer than it, none that it names is missing (the raw store is append-only).
- ``MANIFEST.json``: every file with its size and sha256, and each warehouse table with its
  row count.

Not kept, because they are rebuilt: ``parsed/`` (parsed again from the raw store on the next
run), the local Airflow home and logs (production's metadata database is PostgreSQL: back it
up with ``pg_dump``), the local mail catcher's messages.

A file the previous backup holds with the same content is hard-linked to it, not copied, so a
monthly backup costs only what changed (the previous copy is read first: one damaged since is
copied again from the home, not linked to). A backup is written under ``<made at>.partial`` and
renamed when complete and verified: a killed backup is never taken for one (the next backup
removes it). Then the oldest complete backups beyond ``keep`` (``config/backup.yaml``) are
renamed ``.partial`` and removed (so one stopped half-removed is not taken for a backup either). Raw files are checked against the sha256 they are named by: a damaged raw store fails
the backup, naming the file, instead of being copied over a good one.

``carewatch restore BACKUP --to HOME`` checks every file against the manifest, then writes a
new home (an empty folder, or none), the warehouse last; ``--check`` only checks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from carewatch import paths
from carewatch.rawstore import sha256_file
from carewatch.errors import CarewatchError

KEPT = ("raw", "refused", "reports", "exports", "gx", "runs", "outbox")
WAREHOUSE = "warehouse.duckdb"
MANIFEST = "MANIFEST.json"
FORMAT = 1
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ(-\d+)?$")
_CONTENT_NAMED = ("raw", "refused")  # folders whose files are named <sha256>.<ext>


class BackupError(CarewatchError):
    """A backup that could not be made, or does not match its manifest: the same again on a retry."""


class BackupBusy(CarewatchError):
    """Another backup into the same destination is running: try again later."""


class HomeChanged(CarewatchError):
    """A file of the home changed while it was copied (a pipeline task rewriting it): try again."""


@dataclass
class Backup:
    path: Path
    files: int
    bytes: int
    linked: int  # files hard-linked to the previous backup (same content)
    tables: int
    removed: list[Path]  # older backups removed beyond ``keep``

    def describe(self) -> str:
        shared = f", {self.linked} of them unchanged since the previous backup (hard-linked)" if self.linked else ""
        pruned = f"; removed {len(self.removed)} older backup(s): {', '.join(p.name for p in self.removed)}" if self.removed else ""
        return (f"backup {self.path}: the warehouse ({self.tables} tables) and {self.files} files, "
                f"{self.bytes / 1e6:.1f} MB{shared}; verified{pruned}")


def keep_default() -> int:
    """How many complete backups to keep (``config/backup.yaml``: keep; 0 keeps all)."""
    import yaml

    config_file = paths.config_dir() / "backup.yaml"
    config = yaml.safe_load(config_file.read_text()) or {}
    keep = config.get("keep")
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
        raise CarewatchError(f"{config_file}: keep must be a whole number, 0 or more (0 keeps every backup), not {keep!r}")
    return keep


def configured_destination() -> Path | None:
    """The folder of backups the deployment names (``CAREWATCH_BACKUP_DIR``), or None: the
    backup DAG is then skipped and ``carewatch status`` says backups are not configured."""
    chosen = os.environ.get("CAREWATCH_BACKUP_DIR")
    return Path(chosen).expanduser().resolve() if chosen else None


def destination(dest: str | Path | None) -> Path:
    """``dest``, or ``CAREWATCH_BACKUP_DIR``; one-line error if neither."""
    chosen = dest or configured_destination()
    if not chosen:
        raise BackupError("no backup destination: give one (carewatch backup DEST) or set CAREWATCH_BACKUP_DIR, "
                          "on another disk than the home")
    return Path(chosen).expanduser().resolve()


def complete_backups(dest: Path) -> list[Path]:
    """The complete backups in ``dest``, oldest first."""
    if not dest.is_dir():
        return []
    return sorted((p for p in dest.iterdir() if p.is_dir() and _STAMP.match(p.name) and (p / MANIFEST).is_file()),
                  key=lambda p: _made(p.name))


def _made(name: str) -> tuple[str, int]:
    """The order backups were made in: by ``<made at>``, then its number in that second (-2 ...
    -10: as numbers, not text)."""
    stamp, _, n = name.removesuffix(".partial").partition("Z-")
    return (stamp.removesuffix("Z"), int(n) if n.isdigit() else 1)


@contextlib.contextmanager
def _exclusive(dest: Path):
    """One backup at a time per destination."""
    with open(dest / ".backup.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupBusy(f"another backup into {dest} is running; try again when it finishes") from None
        yield


@contextlib.contextmanager
def _file_errors(what: str):
    """A file system error (permission, a full disk, a file where a folder should be) as one
    line naming the file: the same again on a retry."""
    try:
        yield
    except OSError as err:
        raise BackupError(f"{what}: {err.strerror or err}{': ' + str(err.filename) if err.filename else ''}") from err


def _stamp(dest: Path, now: dt.datetime) -> str:
    base = now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    # numbered after the newest of that second still here (one pruned meanwhile is not reused:
    # the new backup must sort after the ones it keeps)
    made = [_made(p.name)[1] for p in dest.glob(base + "*") if _made(p.name)[0] == base.removesuffix("Z")]
    return f"{base}-{max(made) + 1}" if made else base


def _table_rows(con) -> dict[str, int]:
    tables = [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where database_name = current_database() order by table_name").fetchall()]
    return {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}


def _check_content_name(relative: str, digest: str) -> None:
    """A raw (or refused) file is named by its sha256: a file whose content does not match is damaged."""
    top, name = relative.split("/", 1)[0], relative.rsplit("/", 1)[-1]
    if top in _CONTENT_NAMED and re.fullmatch(r"[0-9a-f]{64}\..+", name) and not name.startswith(digest):
        raise BackupError(f"{relative} does not hash to its name (sha256 {digest[:12]}...): the file is damaged; "
                          "an earlier backup holds it as it was (carewatch restore --check BACKUP to find one)")


def attempt_file(home: Path | None = None) -> Path:
    """Where the home notes its latest backup attempt (``backup-attempt.json``, beside the
    folders a backup keeps, not in them): ``carewatch status`` says a failed one at once, not
    when the newest backup grows old, and whether or not its failure email reached anyone."""
    return Path(home or paths.home()) / "backup-attempt.json"


def last_attempt(home: Path | None = None) -> dict | None:
    """The latest backup attempt noted (:func:`attempt_file`): ``attempted_at`` (aware
    datetime), ``outcome`` ('made' or 'failed'), ``error``, ``destination`` (the folder of
    backups it wrote to, or None: none given, or noted by an earlier release); None before any
    (or unreadable)."""
    try:
        noted = json.loads(attempt_file(home).read_text())
        return {**noted, "attempted_at": dt.datetime.fromisoformat(noted["attempted_at"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _note_attempt(home: Path | None, dest: str | Path | None, outcome: str, error: str | None = None) -> None:
    try:
        where = str(destination(dest))
    except BackupError:  # none given: nothing to find backups in
        where = None
    target = attempt_file(home)
    with contextlib.suppress(OSError):  # the note must not turn a backup's outcome into another error
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(json.dumps({"attempted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                       "outcome": outcome, "error": error, "destination": where}))
        partial.replace(target)


def make(dest: str | Path | None = None, keep: int | None = None, home: Path | None = None,
         now: dt.datetime | None = None) -> Backup:
    """Back up ``home`` (default :func:`carewatch.paths.home`) into ``dest``; see the module doc.
    The attempt is noted in the home (:func:`attempt_file`), made or failed; not one that found
    another backup running (that one's outcome stands)."""
    try:
        made = _make(dest, keep, home, now)
    except BackupBusy:
        raise
    except BaseException as err:
        _note_attempt(home, dest, "failed", str(err) or err.__class__.__name__)
        raise
    _note_attempt(home, dest, "made")
    return made


@_file_errors("cannot back up")
def _make(dest: str | Path | None, keep: int | None, home: Path | None, now: dt.datetime | None) -> Backup:
    from carewatch import warehouse

    wh = Path(home) / WAREHOUSE if home else paths.warehouse_path()
    home = Path(home or paths.home()).resolve()
    dest = destination(dest)
    keep = keep_default() if keep is None else keep
    if not wh.is_file():
        raise BackupError(f"nothing to back up: no warehouse at {wh}")
    if dest == home or home in dest.parents:
        raise BackupError(f"{dest} is inside the home it would back up ({home}): a backup there is lost with it; "
                          "choose another disk")
    dest.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest):
        for stale in dest.glob("*.partial"):  # left by a killed backup: never complete
            shutil.rmtree(stale)
        backups = complete_backups(dest)
        previous = backups[-1] if backups else None
        try:  # a previous backup whose manifest is damaged is linked to for nothing
            previous_files = _read_manifest(previous)["files"] if previous else {}
        except BackupError:
            previous_files = {}
        name = _stamp(dest, now or dt.datetime.now(dt.timezone.utc))
        work = dest / f"{name}.partial"
        work.mkdir()
        files: dict[str, dict] = {}
        linked = 0

        def add(source: Path, relative: str, digest: str | None = None) -> None:
            nonlocal linked
            digest = digest or sha256_file(source)
            _check_content_name(relative, digest)
            target = work / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            known = previous_files.get(relative)
            # linked only if the previous backup's copy still holds that content: a copy damaged
            # since (or edited through a hard-linked twin) is not carried into this backup
            if (previous is not None and known and known["sha256"] == digest and (previous / relative).is_file()
                    and sha256_file(previous / relative) == digest):
                with contextlib.suppress(OSError):  # another file system, or links not allowed: a copy
                    os.link(previous / relative, target)
                    linked += 1
            if not target.exists():
                shutil.copy2(source, target)
                if sha256_file(target) != digest:  # rewritten in place meanwhile: not damage, a busy home
                    raise HomeChanged(f"{relative} changed while it was copied (a pipeline task is writing it); "
                                      "try again when it finishes")
            files[relative] = {"bytes": target.stat().st_size, "sha256": digest}

        try:
            # the warehouse first, under a read-only connection: no writer can open it meanwhile
            with warehouse.connect(read_only=True, path=wh) as con:
                tables = _table_rows(con)
                for part, name_in_backup in ((wh, WAREHOUSE), (wh.with_name(wh.name + ".wal"), WAREHOUSE + ".wal")):
                    if part.is_file():
                        add(part, name_in_backup)
            for folder in KEPT:
                root = home / folder
                if not root.is_dir():
                    continue
                for source in sorted(root.rglob("*")):
                    relative = source.relative_to(home).as_posix()
                    if source.is_symlink():  # not followed by rglob: left out, the backup would not be complete
                        raise BackupError(f"{relative} is a symbolic link: a backup holds the home's files, not links "
                                          "to elsewhere; put the file or folder itself in the home")
                    if not source.is_file():
                        continue
                    if source.name.startswith(".") or source.suffix in (".tmp", ".partial"):
                        continue  # a write in progress (written aside, then renamed into place)
                    try:
                        add(source, relative)
                    except FileNotFoundError:  # gone meanwhile (an alert the outbox sent): not part of the home now
                        (work / relative).unlink(missing_ok=True)
            manifest = {"format": FORMAT, "made_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                        "home": str(home), "kept": list(KEPT), "tables": tables, "files": files}
            (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            _verify(work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)  # no half backup left behind
            raise
        final = dest / name
        work.rename(final)
        removed = []
        if keep:
            for old in complete_backups(dest)[:-keep]:
                # renamed first: stopped half-way, what is left is unfinished (the next backup removes it)
                doomed = old.rename(old.with_name(old.name + ".partial"))
                shutil.rmtree(doomed)
                removed.append(old)
    return Backup(final, len(files), sum(f["bytes"] for f in files.values()), linked, len(tables), removed)


@_file_errors("cannot check the backup")
def check(backup: str | Path) -> dict:
    """Every file of ``backup`` as its manifest says (size and sha256, none missing or extra),
    the warehouse opens with every table's row count, and every raw file its ``raw_manifest``
    names is there. Returns the manifest; :class:`BackupError` naming the first problems."""
    backup = Path(backup)
    if backup.name.endswith(".partial"):
        raise BackupError(f"{backup} is an unfinished backup (it was stopped before it was verified): use a complete one")
    return _verify(backup)


def _read_manifest(backup: Path) -> dict:
    """The manifest, as :func:`make` writes it: its format, then every file with its size and
    sha256 and every table with its row count; one line if it is not."""
    try:
        manifest = json.loads((backup / MANIFEST).read_text())
    except ValueError as err:
        raise BackupError(f"{backup / MANIFEST} is damaged: not JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BackupError(f"{backup}: backup format {found!r}, this carewatch reads format {FORMAT}")
    files, tables = manifest.get("files"), manifest.get("tables")
    if not (isinstance(files, dict) and isinstance(tables, dict)
            and all(isinstance(f, dict) and isinstance(f.get("bytes"), int) and isinstance(f.get("sha256"), str)
                    for f in files.values())
            and all(isinstance(n, int) for n in tables.values())):
        raise BackupError(f"{backup / MANIFEST} is damaged: it does not list files (bytes, sha256) and tables (rows)")
    return manifest


def made_at(backup: Path) -> dt.datetime:
    """When ``backup`` was made, from its manifest; :class:`BackupError` in one line if the
    manifest cannot be read or does not say."""
    with _file_errors(f"cannot read {backup / MANIFEST}"):
        manifest = _read_manifest(backup)
    try:
        return dt.datetime.fromisoformat(manifest["made_at"])
    except (KeyError, TypeError, ValueError):
        raise BackupError(f"{backup / MANIFEST} is damaged: it does not say when the backup was made (made_at)") from None


def _verify(backup: Path) -> dict:
    import duckdb

    if not (backup / MANIFEST).is_file():
        raise BackupError(f"{backup} is not a carewatch backup: it has no {MANIFEST}")
    manifest = _read_manifest(backup)
    problems = []
    on_disk = {p.relative_to(backup).as_posix() for p in backup.rglob("*") if p.is_file()} - {MANIFEST}
    for relative in sorted(set(manifest["files"]) - on_disk):
        problems.append(f"{relative} is missing")
    for relative in sorted(on_disk - set(manifest["files"])):
        problems.append(f"{relative} is not in the manifest")
    for relative in sorted(set(manifest["files"]) & on_disk):
        expected, path = manifest["files"][relative], backup / relative
        if path.stat().st_size != expected["bytes"] or sha256_file(path) != expected["sha256"]:
            problems.append(f"{relative} differs from the manifest (damaged)")
    if not problems:
        try:
            with duckdb.connect(str(backup / WAREHOUSE), read_only=True) as con:
                tables = _table_rows(con)
                named = con.execute("select source, period, sha256 from raw_manifest").fetchall() \
                    if "raw_manifest" in tables else []
        except duckdb.Error as err:
            raise BackupError(f"{backup / WAREHOUSE}: the warehouse does not open ({str(err).splitlines()[0]})") from err
        if tables != manifest["tables"]:
            differ = sorted(t for t in set(tables) | set(manifest["tables"]) if tables.get(t) != manifest["tables"].get(t))
            problems.append(f"warehouse tables differ from the manifest: {', '.join(differ)}")
        held = {tuple(Path(f).parts[1:3]) + (Path(f).name.split(".", 1)[0],) for f in manifest["files"] if f.startswith("raw/")}
        for source, period, sha in named:
            if (source, period, sha) not in held:
                problems.append(f"raw file {source}/{period}/{sha[:12]}... that the warehouse names is not in the backup")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise BackupError(f"{backup}: {'; '.join(problems[:5])}{more}")
    return manifest


@_file_errors("cannot restore")
def restore(backup: str | Path, home: str | Path) -> dict:
    """Check ``backup``, then write it as the new home ``home``, which must not exist or be
    empty (a new volume's mount point): copied into ``home/.restore.partial`` first, then moved
    into place, the warehouse last, so a stopped restore leaves no warehouse beside half a raw
    store. One stopped while copying is started again by the next restore; one stopped while
    moving into place (a moment) leaves a home the next restore refuses as not empty: remove
    it and restore again. Returns the manifest."""
    backup, home = Path(backup).resolve(), Path(home).expanduser().resolve()
    if home == backup or backup in home.parents:
        raise BackupError(f"{home} is inside the backup {backup}: restore into a new home elsewhere "
                          "(files written there would damage the backup)")
    manifest = check(backup)
    staging = home / ".restore.partial"
    if home.exists() and (not home.is_dir() or any(p != staging for p in home.iterdir())):
        raise BackupError(f"{home} is not empty: restore into a new home, or move this one aside first "
                          "(a restore never mixes with what a home holds)")
    if staging.exists():
        shutil.rmtree(staging)  # left by a stopped restore
    for relative in manifest["files"]:
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(backup / relative, target)
    # the warehouse last, and its write-ahead log before it: never the file without its log
    for entry in sorted(staging.iterdir(), key=lambda p: (p.name.startswith(WAREHOUSE), p.name == WAREHOUSE, p.name)):
        entry.rename(home / entry.name)
    staging.rmdir()
    return manifest
