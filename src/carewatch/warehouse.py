"""The DuckDB metrics warehouse: atomic, idempotent loads and the layered SQL models.

Layout (see ``docs/data-contract.md`` for every column):

- ``land_<source>``: every parsed version of every period, append-only per version, with
  ``_period``, ``_version``, ``_sha256``, ``_loaded_at``. This is what lets the warehouse
  answer "what did we report for Trafford for September 2017, as of October 2017".
- ``ref_*``: the reference geography and metric definitions, reloaded from ``config/``.
- models from ``include/sql/``: ``staging/`` (latest version of each period, typed and
  renamed), ``conformed/`` (areas mapped to HWBs through boundary changes, periods as dates),
  ``marts/`` (``fct_metric_values`` at area x period x metric, and dimensions).

Atomicity: one period of one source is loaded in one transaction (delete that version,
insert it again); models are rebuilt in one transaction. A failed or killed load leaves the
previous state, and readers never see half of either.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from carewatch import paths
from carewatch.errors import CarewatchError, MissingProjectFile, WarehouseBusy

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
MODEL_LAYERS = ("macros", "staging", "conformed", "marts")


WRITER_WAIT_SECONDS = 120.0  # CAREWATCH_WAREHOUSE_WAIT overrides


def _seconds(value, what: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not (0 <= seconds < float("inf")):
        raise CarewatchError(f"{what} must be a number of seconds, 0 or more, not {value!r}")
    return seconds


def writer_wait() -> float:
    """How long a writer waits for the file to be free: CAREWATCH_WAREHOUSE_WAIT seconds
    (default 120). Writers queue in the ``carewatch_warehouse`` pool; what they wait for here is
    an analyst's read-only connection, which DuckDB lets keep writers out."""
    import os

    return _seconds(os.environ.get("CAREWATCH_WAREHOUSE_WAIT", WRITER_WAIT_SECONDS), "CAREWATCH_WAREHOUSE_WAIT")


def _announce_wait(message: str) -> None:
    print(f"carewatch: {message}", flush=True)


@contextlib.contextmanager
def connect(read_only: bool = False, path: Path | None = None,
            wait: float | None = None) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
    """The warehouse file, closed on exit. DuckDB lets one process open a file for writing, and
    no other process can open it meanwhile, even to read.

    A reader kept out by a writer gets :class:`WarehouseBusy` at once (the CLI says so in one
    line). A writer kept out (by an analyst reading, or another writer outside the pool) waits
    up to ``wait`` seconds (default :func:`writer_wait`), retrying with backoff, before
    :class:`WarehouseBusy`. Reading a warehouse that does not exist, or a file that is not one,
    is a one-line :class:`CarewatchError`."""
    import duckdb
    from tenacity import Retrying, retry_if_exception_type, stop_before_delay, wait_exponential

    db = Path(path or paths.warehouse_path())
    if read_only and not db.exists():
        raise CarewatchError(f"no warehouse at {db}: run the pipeline first (make run)")
    if not read_only:
        db.parent.mkdir(parents=True, exist_ok=True)
    patience = 0.0 if read_only else (writer_wait() if wait is None else _seconds(wait, "the writer's wait"))

    def open_once(waited: str = ""):
        try:
            return duckdb.connect(str(db), read_only=read_only)
        except duckdb.IOException as err:
            text = str(err)
            if "Could not set lock" in text or "Conflicting lock" in text:
                # a reader is only ever kept out by a writer; a writer by anyone who has it open
                holder = "a pipeline task is writing it" if read_only else "another process has it open"
                pid = re.search(r"\(PID (\d+)\)", text)
                busy = f"{db} is busy ({holder}{', PID ' + pid.group(1) if pid else ''}"
                raise WarehouseBusy(f"{busy}{waited}); try again when it finishes", waiting=f"{busy}); waiting up to "
                                    f"{patience:g} s for it to close") from err
            raise CarewatchError(f"{db}: cannot open the warehouse ({text.splitlines()[0][:160]})") from err

    def waiting(state):
        if state.attempt_number == 1:
            _announce_wait(state.outcome.exception().waiting)

    if patience > 0:
        try:
            # stop_before_delay: no sleep runs past the wait
            con = Retrying(retry=retry_if_exception_type(WarehouseBusy), stop=stop_before_delay(patience),
                           wait=wait_exponential(multiplier=0.25, max=5), before_sleep=waiting, reraise=True)(open_once)
        except WarehouseBusy:
            con = open_once(f"; waited {patience:g} s")  # a last try, whose error says how long it waited
    else:
        con = open_once()
    con.execute("set enable_progress_bar = false")
    try:
        yield con
    finally:
        con.close()


def land_table(source: str) -> str:
    if not _IDENT.match(source):
        raise ValueError(f"not a valid source name: {source!r}")
    return f"land_{source}"


BUILDS_DDL = "create table if not exists warehouse_builds (built_at timestamptz not null)"
# when the builds began to be recorded, and whether the warehouse already had marts from
# builds before that (a warehouse of an earlier release): only then does load time stand for
# report time before the first recorded build
BUILDS_SINCE_DDL = "create table if not exists warehouse_builds_since (recorded_from timestamptz not null, earlier_builds boolean not null)"


# a loaded version an operator rejected (carewatch reject): the staging models leave it out
# while the rejection stands (withdrawn_at null), so its period falls back to its latest other
# version. One row per rejection, never deleted: as_of applies the rejections that stood at its
# moment (rejected before it, not withdrawn by then), so what was reported stays answerable
REJECTED_DDL = """create table if not exists rejected_versions (
    source varchar not null, period varchar not null, version integer not null, sha256 varchar not null,
    reason varchar not null, rejected_at timestamptz not null, withdrawn_at timestamptz)"""


def _loaded_versions(con, source: str, period: str) -> dict[int, str]:
    table = land_table(source)
    if not table_exists(con, table):
        return {}
    return dict(con.execute(f"select distinct _version, _sha256 from {table} where _period = ? order by 1", [period]).fetchall())


def _rejected(con, source: str, period: str) -> dict[int, str]:
    """The versions of ``period`` whose rejection stands, with its reason."""
    if not table_exists(con, "rejected_versions"):
        return {}
    return dict(con.execute("select version, reason from rejected_versions where source = ? and period = ? "
                            "and withdrawn_at is null", [source, period]).fetchall())


def reject_version(con, *, source: str, period: str, reason: str, version: int | None = None,
                   leave_empty: bool = False) -> dict:
    """Reject a loaded version of ``period`` (default: the latest loaded one): the next build
    leaves it out and uses the period's latest other version. For a file that passed its suite
    but is wrong (a cross-source check refuses every build while it is the latest). Refused
    when the latest is rejected already and no ``version`` is named (the same command twice
    must not reject the version before it too), and when no version would be left in use
    unless ``leave_empty`` (the period's figures would vanish from the builds). One
    transaction; returns {"version", "in_use"} (the version the next build uses, or None)."""
    from carewatch.errors import CarewatchError

    if not reason.strip():
        raise CarewatchError("a rejection needs a reason (--reason), kept in rejected_versions")
    loaded, rejected = _loaded_versions(con, source, period), _rejected(con, source, period)
    if not loaded:
        raise CarewatchError(f"{source} {period}: no version is loaded in {land_table(source)}")
    if version is None:
        version = max(loaded)
        if version in rejected:
            raise CarewatchError(f"{source} {period}: the latest version, v{version}, is rejected already ({rejected[version]}); "
                                 f"to reject an earlier one too, name it with --version")
    if version not in loaded:
        raise CarewatchError(f"{source} {period}: version {version} is not loaded (loaded: {', '.join(f'v{v}' for v in loaded)})")
    if version in rejected:
        raise CarewatchError(f"{source} {period} v{version} is rejected already: {rejected[version]}")
    left = [v for v in loaded if v not in rejected and v != version]
    if not left and not leave_empty:
        raise CarewatchError(f"{source} {period}: rejecting v{version} leaves no version of the period in use, so its "
                             f"figures would vanish from the builds; if that is meant, add --leave-empty")
    con.execute("begin transaction")
    try:
        con.execute(REJECTED_DDL)
        con.execute("insert into rejected_versions values (?, ?, ?, ?, ?, now(), null)",
                    [source, period, version, loaded[version], reason.strip()])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return {"version": version, "in_use": max(left) if left else None}


def withdraw_rejection(con, *, source: str, period: str, version: int) -> dict:
    """Withdraw the rejection of ``version`` (``withdrawn_at``; the row stays, for as_of): the
    next build may use it again. Returns {"version", "in_use"} as :func:`reject_version` does."""
    from carewatch.errors import CarewatchError

    rejected = _rejected(con, source, period)
    if version not in rejected:
        raise CarewatchError(f"{source} {period} v{version} is not rejected"
                             + (f" (rejected: {', '.join(f'v{v}' for v in sorted(rejected))})" if rejected else ""))
    con.execute("update rejected_versions set withdrawn_at = now() where source = ? and period = ? and version = ? "
                "and withdrawn_at is null", [source, period, version])
    left = [v for v in _loaded_versions(con, source, period) if v not in rejected or v == version]
    return {"version": version, "in_use": max(left) if left else None}


@dataclass(frozen=True)
class NewVersion:
    source: str
    period: str
    version: int
    loaded_at: dt.datetime
    previous: int | None  # the period's version before it (what a rejection falls back to), if any


def rejection_stands(con, source: str, period: str, version: str) -> str:
    """An SQL condition: the rejection (``carewatch reject``) of the version ``version`` of
    ``period`` of ``source`` stands, each an SQL expression (a column, or a quoted name);
    ``false`` on a warehouse that never had a rejection. The one test the builds' readers apply
    (the staging models write it out as an anti join)."""
    if not table_exists(con, "rejected_versions"):
        return "false"
    return (f"exists (select 1 from rejected_versions r where r.source = {source} and r.period = {period} "
            f"and r.version = {version} and r.withdrawn_at is null)")


def later_version_in_use(con, source: str, period: str, version: int) -> int | None:
    """The latest version of ``period`` later than ``version`` loaded in ``source``'s landing
    table and not rejected (what the builds read instead of it), or None; None too for a name
    that is no source (a warehouse check, ``check:<name>``)."""
    try:
        table = land_table(source)
    except ValueError:
        return None
    if not table_exists(con, table):
        return None
    rejected = rejection_stands(con, f"'{source}'", "t._period", "t._version")  # (a plain name: land_table checked it)
    [(later,)] = con.execute(f"select max(_version) from {table} t where _period = ? and _version > ? and not {rejected}",
                             [period, int(version)]).fetchall()
    return later


def versions_new_since_last_build(con) -> list[NewVersion]:
    """The versions loaded since the last build committed before this transaction's, or put back
    since then by a withdrawn rejection, that the build reads (each period's latest version not
    rejected): inside a build, the versions it is the first to read, oldest period first; on a
    warehouse never built, every period's. What an operator looks at first when a cross-source check refuses
    the build: a new file that passed its own suite."""
    last = None
    if table_exists(con, "warehouse_builds"):
        [(last,)] = con.execute("select epoch_us(max(built_at)) from warehouse_builds where built_at < now()").fetchall()
    rows = []
    for source in land_sources():
        table = land_table(source)  # (a plain name: safe quoted as a literal below)
        if not table_exists(con, table):
            continue

        def standing(t: str) -> str:  # the version's rejection stands: the build does not read it
            return rejection_stands(con, f"'{source}'", f"{t}._period", f"{t}._version")

        # loaded since the last build, or put back since then by a withdrawn rejection
        put_back = (f"exists (select 1 from rejected_versions w where w.source = '{source}' and w.period = t._period "
                    f"and w.version = t._version and epoch_us(w.withdrawn_at) > {int(last)})"
                    if last is not None and table_exists(con, "rejected_versions") else "false")
        since = "true" if last is None else f"(epoch_us(_loaded_at) > {int(last)} or {put_back})"
        for period, version, loaded_us, previous in con.execute(
            f"""select _period, _version, epoch_us(max(_loaded_at)),
                       (select max(e._version) from {table} e where e._period = t._period and e._version < t._version
                        and not {standing("e")})
                from {table} t
                where {since} and not {standing("t")}
                    -- the version the build reads: the period's latest not rejected (an older one
                    -- loaded since, and replaced by a newer one, was never read)
                    and t._version = (select max(m._version) from {table} m where m._period = t._period and not {standing("m")})
                group by _period, _version order by _period, _version""").fetchall():
            rows.append(NewVersion(source, period, version, _utc(loaded_us), previous))
    return rows


def land_sources() -> list[str]:
    """The sources with a landing table: every catalogued source that loads to the warehouse
    (``config/sources.yaml``; ``loads_to_warehouse``, true by default). Their tables are created
    before the models are built, so a model can read a source none of whose periods has loaded."""
    from carewatch import sources

    return [name for name, src in sources.catalogue().items() if src.loads_to_warehouse]


def land_ddl(source: str) -> str:
    """The landing table's DDL: the data contract, made executable (``include/sql/land/``)."""
    ddl = paths.sql_dir() / "land" / f"{land_table(source)}.sql"
    if not ddl.is_file():
        raise MissingProjectFile(f"no landing table definition for source {source!r}: {ddl}")
    return ddl.read_text()


@dataclass(frozen=True)
class Load:
    """What :func:`load_parsed` did: ``rows`` of the version are in the landing table;
    ``skipped`` when they were already there from the same file and were left as they were."""

    rows: int
    skipped: bool


def load_parsed(con, *, source: str, period: str, version: int, sha256: str, parsed_path: str | Path) -> Load:
    """Load one parsed version of one period into ``land_<source>`` in one transaction.

    Idempotent: loading the same (period, version) again replaces exactly those rows, except
    that a version already loaded from this same file with exactly these rows (same sha256,
    same rows and values) is left as it is, so its ``_loaded_at`` (what the warehouse answered
    "as of" a date) keeps the time it was first loaded. A parser fix that changes what the
    same file gives replaces the rows (``_loaded_at``: when the fix loaded).
    """
    table = land_table(source)
    parquet = str(parsed_path)
    con.execute("begin transaction")
    try:
        con.execute(land_ddl(source))
        (in_file,) = con.execute("select count(*) from read_parquet(?)", [parquet]).fetchone()
        if (in_file and loaded_rows(con, source=source, period=period, version=version, sha256=sha256) == in_file
                and _same_rows(con, table, parquet, period, version)):
            con.execute("commit")
            return Load(rows=in_file, skipped=True)
        con.execute(f"delete from {table} where _period = ? and _version = ?", [period, version])
        con.execute(
            f"""
            insert into {table} by name
            select *, ?::varchar as _period, ?::integer as _version, ?::varchar as _sha256,
                   current_timestamp::timestamptz as _loaded_at
            from read_parquet(?)
            """,
            [period, version, sha256, parquet],
        )
        (rows,) = con.execute(
            f"select count(*) from {table} where _period = ? and _version = ?", [period, version]
        ).fetchone()
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return Load(rows=rows, skipped=False)


def _same_rows(con, table: str, parquet: str, period: str, version: int) -> bool:
    """Whether the landing table holds exactly the parsed file's rows for this version (a
    parser fix that changes values but not the row count must reach the warehouse)."""
    names = [name for (name, *_) in con.execute("describe select * from read_parquet(?)", [parquet]).fetchall()]
    cols = ", ".join(f'"{name}"' for name in names)
    loaded = f"select {cols} from {table} where _period = $period and _version = $version"
    parsed = f"select {cols} from read_parquet($parquet)"
    (differ,) = con.execute(
        f"select count(*) from (({parsed} except all {loaded}) union all ({loaded} except all {parsed}))",
        {"period": period, "version": version, "parquet": parquet},
    ).fetchone()
    return differ == 0


def table_exists(con, name: str) -> bool:
    # fetchall: the result is finished, so a relation (con.sql) may follow on the connection
    [(count,)] = con.execute("select count(*) from information_schema.tables where table_name = ?", [name]).fetchall()
    return bool(count)


def columns(con, table: str) -> list[str]:
    """The columns of ``table`` in order; empty when there is no such table."""
    return [name for name, _ in column_types(con, table)]


def column_types(con, table: str) -> list[tuple[str, str]]:
    """(name, type) of each column of ``table``, in order; empty when there is no such table."""
    return con.execute("select column_name, data_type from information_schema.columns where table_name = ? "
                       "order by ordinal_position", [table]).fetchall()


def loaded_rows(con, *, source: str, period: str, version: int, sha256: str) -> int | None:
    """Rows of ``period`` version ``version`` in ``land_<source>`` loaded from the file with
    this sha256; None when that version is not loaded from that file."""
    table = land_table(source)
    if not table_exists(con, table):
        return None
    (rows, other) = con.execute(
        f"select count(*) filter (where _sha256 = ?), count(*) filter (where _sha256 <> ?) from {table} where _period = ? and _version = ?",
        [sha256, sha256, period, version],
    ).fetchone()
    return rows if rows and not other else None


def model_files(sql_dir: Path | None = None) -> list[Path]:
    """The SQL model files in build order: layer by layer, then by file name."""
    root = Path(sql_dir or paths.sql_dir())
    files: list[Path] = []
    for layer in MODEL_LAYERS:
        files.extend(sorted((root / layer).glob("*.sql")))
    return files


def metric_config() -> dict:
    """``config/metrics.yaml``, checked (:mod:`carewatch.methodology.config_check`: direction low
    or high, ...); a mistake is a :class:`carewatch.errors.ConfigError` naming the key."""
    from carewatch.methodology import config_check

    return config_check.metrics_file()


def poisson_exact_limits(confidence_level: float, below: int = 10):
    """Exact Poisson confidence limits for 0..below-1 events (chi-squared quantiles)."""
    import pandas as pd
    from scipy.stats import chi2

    alpha = 1 - confidence_level
    rows = []
    for observed in range(below):
        lower = 0.0 if observed == 0 else chi2.ppf(alpha / 2, 2 * observed) / 2
        upper = chi2.ppf(1 - alpha / 2, 2 * (observed + 1)) / 2
        rows.append({"observed": observed, "lower_limit": float(lower), "upper_limit": float(upper)})
    return pd.DataFrame(rows)


def load_reference(con) -> None:
    """(Re)load the ``ref_*`` tables from ``config/``: geography, metric definitions, settings."""
    import pandas as pd
    from scipy.stats import norm

    from carewatch import geography

    frames = {
        "ref_councils": geography.councils(),
        "ref_hwb_areas": geography.hwb_areas(),
        "ref_code_changes": geography.code_changes(),
        "ref_legacy_codes": geography.legacy_codes(),
    }
    config = metric_config()
    frames["ref_metrics"] = pd.DataFrame(
        [
            {
                "metric_id": m["id"],
                "name": m["name"],
                "dashboard_number": m.get("dashboard_number"),
                "unit": m["unit"],
                "denominator_unit": m.get("denominator_unit"),
                "direction": m["direction"],
                "source": m["source"],
                "ci_method": m["ci_method"],
                "multiplier": float(m["multiplier"]),
                "window_denominator": m.get("window_denominator", "sum"),
                "definition": m["definition"],
            }
            for m in config["metrics"]
        ]
    )
    level = float(config["confidence_level"])
    frames["ref_settings"] = pd.DataFrame(
        [{"confidence_level": level, "ci_z": float(norm.ppf(1 - (1 - level) / 2)), "metrics_version": config["version"]}]
    )
    frames["ref_poisson_exact"] = poisson_exact_limits(level)
    for name, frame in frames.items():
        con.register(f"{name}_frame", frame)
        con.execute(f"create or replace table {name} as select * from {name}_frame")
        con.unregister(f"{name}_frame")


def build_models(con, sql_dir: Path | None = None, reference: bool = True, check=None) -> list[str]:
    """Rebuild reference tables and every model in one transaction; returns the models built
    (the tables and views, by name: the macro files are run, not listed).

    ``reference=False`` keeps the ``ref_*`` tables already in the database (tests build
    hand-made ones). ``check(con)`` runs inside the transaction after the last model: if it
    raises, everything is rolled back and readers keep the previous warehouse.
    """
    built = []
    con.execute("begin transaction")
    try:
        for source in land_sources():
            con.execute(land_ddl(source))
        con.execute(REJECTED_DDL)  # the staging models leave rejected versions out
        # when this build read the landing tables (the transaction's start: DuckDB's now()):
        # committed with the build, or rolled back with it (as_of answers from committed builds)
        if not table_exists(con, "warehouse_builds"):
            con.execute(BUILDS_SINCE_DDL)
            con.execute("insert into warehouse_builds_since values (now(), ?)", [table_exists(con, "fct_metric_values")])
        con.execute(BUILDS_DDL)
        con.execute("insert into warehouse_builds values (now())")
        if reference:
            load_reference(con)
        for sql_file in model_files(sql_dir):
            con.execute(sql_file.read_text())
            if sql_file.parent.name != "macros":
                built.append(sql_file.stem)
        if check is not None:
            check(con)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return built


def _utc(epoch_us: int | None):
    """A DuckDB epoch in microseconds as an aware UTC datetime. Instants cross from DuckDB as
    epochs: its Python client converts a timestamptz through pytz, which does not know every
    zone name DuckDB's session may use (JST, IST)."""
    return None if epoch_us is None else dt.datetime.fromtimestamp(0, dt.timezone.utc) + dt.timedelta(microseconds=epoch_us)


_BARE_DATE = re.compile(r"\d{4}-?\d{2}-?\d{2}")


def parse_moment(text: str) -> "dt.date | dt.datetime":  # noqa: F821
    """A date (2017-10-31, 20171031) or an ISO timestamp with a time (2017-10-31T18:00, with
    or without an offset); ValueError for anything else, week dates and months included."""
    text = text.strip()
    if _BARE_DATE.fullmatch(text):
        return dt.date.fromisoformat(text)
    if "T" in text or " " in text:
        return dt.datetime.fromisoformat(text)
    raise ValueError(f"not a date or a timestamp: {text!r}")


def as_of_cutoff(con, when) -> "dt.datetime":  # noqa: F821
    """The instant (aware, UTC) a version must have been loaded before (``_loaded_at < cutoff``)
    to count as loaded by ``when``: a bare date (:func:`parse_moment`) means the end of that
    day (loads made on it count), a timestamp is taken as is (a load at that very instant
    counts). A date, or a timestamp without an offset, is a wall-clock time in the session's
    time zone (DuckDB's ``TimeZone``), resolved by DuckDB as it resolves ``_loaded_at``."""
    moment = when if isinstance(when, dt.date) else parse_moment(str(when))
    try:
        if isinstance(moment, dt.datetime):
            moment += dt.timedelta(microseconds=1)
        else:
            moment = dt.datetime.combine(moment + dt.timedelta(days=1), dt.time())
        if moment.tzinfo is not None:
            return moment.astimezone(dt.timezone.utc)
        return _utc(con.execute("select epoch_us(?::timestamp::timestamptz)", [moment.isoformat()]).fetchone()[0])
    except OverflowError:
        raise CarewatchError(f"{when} is outside the dates the warehouse can answer for") from None


# a cutoff no version was loaded before: nothing was reported yet
NOTHING_REPORTED = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)


def reported_cutoff(con, cutoff):
    """What the marts held at ``cutoff``: the versions loaded before the last build committed
    by then began (``warehouse_builds``). A version loaded after it, by then or later, was not
    reported yet; one whose build rolled back (a blocking warehouse check) was never reported,
    until a later build commits with it. Before the first build nothing was reported
    (:data:`NOTHING_REPORTED`), except in a warehouse of an earlier release, whose first builds
    were not recorded (``warehouse_builds_since.earlier_builds``, or no such table): there
    load time stands for report time, as it did then."""
    if not table_exists(con, "warehouse_builds"):
        # no build recorded: an earlier release's marts (load time stands in), or none committed yet
        return cutoff if table_exists(con, "fct_metric_values") else NOTHING_REPORTED
    # as epoch microseconds: a timestamptz comes back in the session's zone, which Python may not know ('JST')
    (last,) = con.execute("select epoch_us(max(built_at)) from warehouse_builds where built_at < ?::timestamptz",
                          [cutoff.isoformat()]).fetchone()
    if last is not None:
        return _utc(last)
    return NOTHING_REPORTED if builds_recorded_from(con) is not None else cutoff


def builds_recorded_from(con):
    """Since when every build is recorded (aware, UTC): the start of the first recorded build
    of a warehouse that had none before it; None for one of an earlier release (whose first
    builds went unrecorded) or one never built."""
    if not table_exists(con, "warehouse_builds_since"):
        return None
    row = con.execute("select epoch_us(recorded_from), earlier_builds from warehouse_builds_since").fetchone()
    return None if row is None or row[1] else _utc(row[0])


def first_built_at(con, after=None):
    """When the first recorded build began (after ``after``, an aware datetime, if given:
    the first build that read what was loaded then); aware, UTC; None when there is none."""
    if not table_exists(con, "warehouse_builds"):
        return None
    (first,) = con.execute("select epoch_us(min(built_at)) from warehouse_builds where $after is null or built_at > $after",
                           {"after": None if after is None else after.isoformat()}).fetchone()
    return None if first is None else _utc(first)


def first_loaded_at(con, period: str | None = None):
    """When the earliest version in the warehouse (of ``period``, as the landing tables name
    periods: "2017-09") was loaded (aware, UTC; None when nothing is)."""
    tables = [t for (t,) in con.execute("select distinct table_name from information_schema.columns "
                                        "where column_name = '_loaded_at' and table_name like 'land%'").fetchall()]
    if not tables:
        return None
    where = "" if period is None else " where _period = $period"
    return _utc(con.execute("select epoch_us(min(loaded)) from (" + " union all ".join(
        f"select min(_loaded_at) as loaded from {t}{where}" for t in tables) + ")",
        {} if period is None else {"period": period}).fetchone()[0])


def area_names(con) -> dict[str, str]:
    """Names of every area code the warehouse reports, from its own ``ref_hwb_areas``
    (:func:`carewatch.geography.hwb_names`)."""
    from carewatch import geography

    return geography.hwb_names(con.execute("select hwb_code, hwb_name from ref_hwb_areas").df())


def as_of(con, when) -> "duckdb.DuckDBPyConnection":  # noqa: F821
    """The warehouse as it stood at ``when``: an in-memory database whose landing tables hold
    only the versions loaded by then (``_loaded_at``), with every model rebuilt from them.

    Answers "what did we report for Trafford for September 2017, as of October 2017":
    ``as_of(con, "2017-10-31").execute("select * from fct_metric_values where ...")``.
    A bare date means the end of that day (loads made on it count); a timestamp is taken as is;
    either without an offset is read in the session's time zone (:func:`as_of_cutoff`).
    The monthly run loads each publication days after it appears, so load time stands for
    publication time; a backfill loads old publications today and so knows no earlier state.
    Only what a committed build read counts (:func:`reported_cutoff`): a version loaded and
    then refused by the warehouse checks (the build rolled back) was never reported.
    """
    import duckdb

    cutoff, loaded_by = reported_cutoff(con, as_of_cutoff(con, when)), "_loaded_at < ?::timestamptz"
    mem = duckdb.connect()
    mem.execute("set enable_progress_bar = false")
    tables = [name for (name,) in con.execute(
        "select table_name from information_schema.tables where table_schema = 'main' and table_type = 'BASE TABLE' "
        "and (table_name like 'land\\_%' escape '\\' or table_name like 'ref\\_%' escape '\\')"
    ).fetchall()]
    for name in tables:
        query = f"select * from {name}" + (f" where {loaded_by}" if name.startswith("land_") else "")
        frame = con.sql(query, params=[cutoff.isoformat()] if name.startswith("land_") else None).to_arrow_table()
        mem.register("frame", frame)
        mem.execute(f"create table {name} as select * from frame")
        mem.unregister("frame")
    # the rejections that stood at the cutoff: made before it, not withdrawn by then (until a
    # rejection the version was reported; after its withdrawal, it was again)
    mem.execute(REJECTED_DDL)
    if table_exists(con, "rejected_versions"):
        frame = con.sql("select * replace (null::timestamptz as withdrawn_at) from rejected_versions "
                        "where rejected_at < $cutoff::timestamptz and (withdrawn_at is null or withdrawn_at >= $cutoff::timestamptz)",
                        params={"cutoff": cutoff.isoformat()}).to_arrow_table()
        mem.register("frame", frame)
        mem.execute("insert into rejected_versions select * from frame")
        mem.unregister("frame")
    # a warehouse of an earlier release has no window rule: its years added denominators up
    mem.execute("alter table ref_metrics add column if not exists window_denominator varchar")
    build_models(mem, reference=False)  # the reference tables are the warehouse's, copied above
    return mem

