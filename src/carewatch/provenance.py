"""Which methodology configuration produced an analysis: the files it read, as parsed.

An analysis reads ``config/methodology/in_force.yaml``, the methodology it names,
``config/metrics.yaml``, ``config/review_flags.yaml``, every target set of ``config/targets/``,
``config/peer_groups.yaml`` and, with ``method: file``, the peer-group file. :func:`snapshot`
reads each once, before the analysis, and parses it (YAML, or a CSV's rows); its ``sha256`` is
of the parsed content as canonical JSON (keys sorted, no whitespace), so a comment or a blank
line is no change. :func:`record` writes them to ``analysis_config`` in the analysis's own
transaction (``analysed_at`` as in ``analysis_runs``), content included: which weights
produced a league table is answerable from the warehouse alone, after the file changed.

A labelled file (a methodology, a review-flag rule set, a target set: ``name`` and ``version``,
``name@vN``) whose parsed content differs from what an earlier analysis recorded under the
same label is refused (:func:`check_labels`): the label is what every table, export and
report names, and two different configurations under one label could not be told apart.
The tables carry the first 12 hex digits of the sha256 beside each label (:func:`short`).

What describes the tables after the fact (the monthly report, the run summary) reads the
configuration they were computed from, :func:`analysed`: the recorded content, checked again by
the loaders, not ``config/`` as it is by then.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from carewatch import paths, warehouse
from carewatch.errors import ConfigChangedUnderLabel

ANALYSIS_CONFIG_DDL = """create table if not exists analysis_config (
    analysed_at timestamptz not null, role varchar not null, file varchar not null, label varchar,
    sha256 varchar not null, content varchar not null)"""

# the roles whose files carry a label (name@vN) that the tables record
LABELLED = ("methodology", "review_flags", "target_set")
SHORT = 12


@dataclass(frozen=True)
class ConfigFile:
    role: str  # in_force, methodology, metrics, review_flags, target_set, peer_groups, peer_file
    file: str  # as the config checks name it: config/methodology/dashboard-2018.yaml (config_check.shown)
    label: str | None  # name@vN of a methodology, rule set or target set; None for the others
    sha256: str  # of content
    content: str  # the parsed file as canonical JSON


def canonical(path: Path) -> str:
    """The parsed content of a YAML or CSV file as canonical JSON: comments, layout and key
    order do not count. A CSV is its rows (every value as text, in file order)."""
    if path.suffix == ".csv":
        data = pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
    else:
        data = yaml.safe_load(path.read_text())
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def short(sha256: str | None) -> str | None:
    """The digest the tables keep beside a label: the sha256's first 12 hex digits."""
    return sha256[:SHORT] if sha256 else None


def _label(data) -> str | None:
    if isinstance(data, dict) and data.get("name") is not None and data.get("version") is not None:
        from carewatch.methodology.config_check import label

        return label(data["name"], data["version"])
    return None


def _file(role: str, path: Path, labelled: bool = False) -> ConfigFile:
    """A labelled file's content is its checked model (:func:`config_check.labelled_content`:
    defaults filled in, 3 and 3.0 alike), so an edit that configures the same analysis is no
    change of content; the others' is the file as parsed."""
    from carewatch.methodology import config_check

    if labelled:
        content = json.dumps(config_check.labelled_content(role, path), sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False, default=str)
    else:
        content = canonical(path)
    label = _label(json.loads(content)) if labelled else None
    from carewatch.methodology.config_check import shown

    return ConfigFile(role, shown(path), label, hashlib.sha256(content.encode()).hexdigest(), content)


def snapshot() -> list[ConfigFile]:
    """Every methodology config file an analysis reads, as parsed now (the loaders' paths:
    :func:`carewatch.methodology.ranking.methodology_path`, :func:`carewatch.methodology.peers.peer_file`)."""
    from carewatch.methodology import peers, ranking

    config = paths.config_dir()
    files = [_file("in_force", config / "methodology" / ranking.IN_FORCE),
             _file("methodology", ranking.methodology_path(), labelled=True),
             _file("metrics", config / "metrics.yaml"),
             _file("review_flags", config / "review_flags.yaml", labelled=True)]
    files += [_file("target_set", path, labelled=True) for path in sorted((config / "targets").glob("*.yaml"))]
    files.append(_file("peer_groups", config / "peer_groups.yaml"))
    peer_config = json.loads(files[-1].content)
    if isinstance(peer_config, dict) and peer_config.get("method") == "file" and peer_config.get("file"):
        files.append(_file("peer_file", peers.peer_file(peer_config)))
    return files


def digests(files: list[ConfigFile], role: str) -> dict[str, str]:
    """label -> short digest of the ``role``'s files (several for target sets)."""
    return {f.label: short(f.sha256) for f in files if f.role == role and f.label}


def check_labels(con, files: list[ConfigFile]) -> None:
    """Refuse a labelled file whose parsed content differs from the content last recorded
    under its label (``analysis_config``): one line naming the file, the label and when it was
    used. A warehouse that recorded nothing accepts anything."""
    if not warehouse.table_exists(con, "analysis_config"):
        return
    for f in files:
        if f.role not in LABELLED or f.label is None:
            continue
        last = con.execute("select sha256, analysed_at from analysis_config where role = ? and label = ? "
                           "order by analysed_at desc limit 1", [f.role, f.label]).fetchone()
        if last is not None and last[0] != f.sha256:
            used = pd.Timestamp(last[1]).tz_convert("UTC") if pd.Timestamp(last[1]).tzinfo else pd.Timestamp(last[1])
            raise ConfigChangedUnderLabel(f"{f.file} changed since it was used as {f.label} on {used:%Y-%m-%d}: "
                                          "give it a new version")


def check_labels_held() -> str | None:
    """:func:`check_labels` of the config as it is now against the warehouse, opened read-only,
    before a run starts (``carewatch run``, ``carewatch check-config``): a file changed under a
    label already used is refused before anything is fetched, not when the analysis reads it.
    Returns why the labels were not checked (no warehouse yet, or a task is writing it: the
    analysis checks them then), or None when they were. The config must have passed its checks."""
    from carewatch.errors import WarehouseBusy

    if not paths.warehouse_path().exists():
        return "no warehouse yet"
    try:
        with warehouse.connect(read_only=True) as con:
            check_labels(con, snapshot())
    except WarehouseBusy:
        return "the warehouse is busy (a task is writing it); the analysis checks them"
    return None


def record(con, files: list[ConfigFile]) -> None:
    """Write ``files`` to ``analysis_config`` with the transaction's start time (inside the
    analysis's transaction). Refuses (so the transaction rolls back) when a file changed since
    :func:`snapshot` read it: the tables were computed from what the loaders read meanwhile."""
    now = snapshot()
    changed = [f.file for f in now if (f.role, f.file, f.sha256) not in {(g.role, g.file, g.sha256) for g in files}]
    changed += [g.file for g in files if (g.role, g.file) not in {(f.role, f.file) for f in now}]
    if changed:
        from carewatch.errors import CarewatchError

        raise CarewatchError(f"{', '.join(sorted(set(changed)))} changed while the analysis ran: run it again")
    con.execute(ANALYSIS_CONFIG_DDL)
    frame = pd.DataFrame([f.__dict__ for f in files])
    con.register("analysis_config_frame", frame)
    try:
        con.execute("insert into analysis_config by name select now() as analysed_at, role, file, label, sha256, content "
                    "from analysis_config_frame")
    finally:
        con.unregister("analysis_config_frame")


def config_of(con, analysed_at: dt.datetime | None = None) -> pd.DataFrame:
    """The configuration an analysis recorded (by default the latest): role, file, label, sha256, content."""
    if not warehouse.table_exists(con, "analysis_config"):
        return pd.DataFrame(columns=["role", "file", "label", "sha256", "content"])
    when = "(select max(analysed_at) from analysis_config)" if analysed_at is None else "$at"
    return con.execute(f"select role, file, label, sha256, content from analysis_config where analysed_at = {when} "
                       "order by role, file", {} if analysed_at is None else {"at": analysed_at}).df()


@dataclass(frozen=True)
class Analysed:
    """The configuration the warehouse's analysis tables were computed from, for what describes
    them after the fact (the monthly report, the run summary): the files the latest analysis
    recorded (:func:`config_of`; every analysis rewrites every table, in the transaction that
    records them), each checked again by its loader from the content kept, so an edit to
    ``config/`` after the analysis (before its report, or a report task rerun) is not mixed
    into it. A warehouse whose analysis recorded nothing (an earlier release's) is described
    with the files as they are now (``recorded`` False)."""

    files: pd.DataFrame  # config_of: role, file, label, sha256, content

    @property
    def recorded(self) -> bool:
        return not self.files.empty

    def _of(self, role: str) -> list[tuple[str, dict]]:
        rows = self.files[self.files["role"] == role]
        return [(f"{row.file} (as the analysis recorded it)", json.loads(row.content)) for row in rows.itertuples()]

    def metrics(self) -> dict:
        """``config/metrics.yaml``, checked (:func:`carewatch.warehouse.metric_config`)."""
        from carewatch.methodology import config_check

        if not self.recorded:
            return warehouse.metric_config()
        [(file, content)] = self._of("metrics")
        return config_check.metrics_file(file, data=content)

    def methodology(self):
        """The methodology ranked with (:func:`carewatch.methodology.ranking.load_methodology`)."""
        from carewatch.methodology import ranking

        if not self.recorded:
            return ranking.load_methodology()
        [(file, content)] = self._of("methodology")
        return ranking.recorded_methodology(content, file, self.metrics())

    def rules(self) -> dict:
        """The review-flag rule set (:func:`carewatch.methodology.flags.load_rules`)."""
        from carewatch.methodology import flags

        if not self.recorded:
            return flags.load_rules()
        [(file, content)] = self._of("review_flags")
        return flags.recorded_rules(content, file, self.metrics())

    def target_sets(self) -> list:
        """Every target set tracked (:func:`carewatch.methodology.targets.load_target_sets`)."""
        from carewatch.methodology import targets

        if not self.recorded:
            return targets.load_target_sets()
        metrics = self.metrics()
        return [targets.recorded_target_set(content, file, metrics) for file, content in self._of("target_set")]

    def peer_groups(self) -> dict:
        """The peer-group config (:func:`carewatch.methodology.peers.load_config`)."""
        from carewatch.methodology import peers

        if not self.recorded:
            return peers.load_config()
        [(file, content)] = self._of("peer_groups")
        return peers.recorded_config(content, file)


def analysed(con) -> Analysed:
    """The configuration of the latest analysis (:class:`Analysed`)."""
    return Analysed(config_of(con))
