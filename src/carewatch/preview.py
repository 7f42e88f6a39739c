"""A read-only preview of a candidate ranking methodology (``carewatch rank``).

Ranks one month of the warehouse with ``config/methodology/<name>.yaml`` as the analysis would
(:mod:`carewatch.analysis`: the same metric values, the areas that existed in the month, the
same lagged financial years), and compares the league table, and the review flags it would give
that month, with those published (``ranking_overall``, ``review_flag``). The warehouse is
opened read-only and only while it is read; nothing is written to it, the reports or the exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from carewatch import analysis, geography, paths, warehouse
from carewatch.errors import CarewatchError, ConfigError
from carewatch.methodology import flags, ranking

ENGLAND = analysis.ENGLAND


class MethodologyNotLoaded(CarewatchError):
    """The candidate methodology file is missing or cannot be read as a methodology (one line)."""


@dataclass
class Preview:
    month: pd.Timestamp
    methodology: ranking.Methodology
    candidate: pd.DataFrame  # ranking.overall_ranking of the month: area_code, score, metrics_ranked, overall_rank, methodology
    names: dict[str, str]  # area code -> name
    published: pd.DataFrame | None = None  # ranking_overall's rolling_12m rows of the month
    candidate_flags: pd.DataFrame | None = None  # flags.evaluate with the candidate league table
    published_flags: pd.DataFrame | None = None  # review_flag rows of the month
    rule_set: str = ""  # name@vN of config/review_flags.yaml, which the candidate flags are evaluated with

    @property
    def published_label(self) -> str:
        return ", ".join(sorted(self.published["methodology"].dropna().unique())) if self.published is not None else ""


def methodology_names() -> list[str]:
    """The methodology files of ``config/methodology/`` (names without .yaml; not in_force.yaml)."""
    folder = paths.config_dir() / "methodology"
    return sorted(p.stem for p in folder.glob("*.yaml") if p.name != ranking.IN_FORCE)


def load_candidate(name: str, metric_cfg: dict) -> ranking.Methodology:
    """``config/methodology/<name>.yaml`` (or a path ending .yaml), or :class:`MethodologyNotLoaded`
    with the loader's message on one line (the file named when the message does not name it)."""
    path = paths.config_dir() / "methodology" / f"{name}.yaml" if not name.endswith(".yaml") else Path(name)
    if not path.is_file():
        raise MethodologyNotLoaded(f"no methodology file {path}; methodologies: {', '.join(methodology_names()) or 'none'}")
    try:
        methodology = ranking.load_methodology(name, metrics_config=metric_cfg)
    except ConfigError as err:  # the config checks' lines, each naming the file and the key
        raise MethodologyNotLoaded("; ".join(err.problems)) from None
    except Exception as err:  # noqa: BLE001  (whatever else the loader raises, said on one line)
        text = f"missing key {err.args[0]!r}" if isinstance(err, KeyError) and err.args else str(err)
        text = " ".join(text.split()) or type(err).__name__
        raise MethodologyNotLoaded(text if str(path) in text else f"{path}: {text}") from None
    if methodology.period_metric is None:
        raise MethodologyNotLoaded(f"{path}: names no period_metric: the metric whose periods are ranked")
    return methodology


def ranked_months(mv: pd.DataFrame, methodology: ranking.Methodology) -> list[pd.Timestamp]:
    """The months the methodology would rank (its ``period_metric`` has a rolling year ending in them)."""
    lead = (mv["period_type"] == "rolling_12m") & (mv["metric_id"] == methodology.period_metric)
    return sorted(pd.Timestamp(m) for m in mv.loc[lead, "period_start"].unique())


def _span(months) -> str:
    months = sorted(months)
    return f"{months[0]:%Y-%m} to {months[-1]:%Y-%m}" if months else "none"


def preview(name: str, month=None, compare: bool = False, with_flags: bool = False) -> Preview:
    """Rank ``month`` (default: the latest month ``ranking_overall`` ranks; else the latest the
    candidate can rank) with methodology ``name``; with ``compare`` the published league table of
    that month, with ``with_flags`` the review flags the candidate table would give and those published."""
    metric_cfg = warehouse.metric_config()
    methodology = load_candidate(name, metric_cfg)
    with warehouse.connect(read_only=True) as con:
        if not warehouse.table_exists(con, "fct_metric_values"):
            raise CarewatchError(f"{paths.warehouse_path()}: the warehouse is not built yet (make run, or the metrics "
                                 "DAG's build_warehouse)")
        mv = analysis.metric_values(con)
        names = warehouse.area_names(con)
        published_all = (con.execute("select * from ranking_overall where period_type = 'rolling_12m'").df()
                         if warehouse.table_exists(con, "ranking_overall") else None)
        flags_all = (con.execute("select * from review_flag").df()
                     if with_flags and warehouse.table_exists(con, "review_flag") else None)
    published_months = sorted({pd.Timestamp(m) for m in published_all["period_start"]}) if published_all is not None else []
    rankable = ranked_months(mv, methodology)
    if month is None:
        month = published_months[-1] if published_months else (rankable[-1] if rankable else None)
        if month is None:
            raise CarewatchError(f"nothing to rank: no rolling 12 months of {methodology.period_metric} in the warehouse")
    month = pd.Timestamp(month)
    if month not in rankable:
        raise CarewatchError(f"--month {month:%Y-%m}: {methodology.label} ranks the months with a rolling 12 months of "
                             f"{methodology.period_metric}: {_span(rankable)}")
    if (compare or with_flags) and month not in published_months:
        raise CarewatchError(f"no published ranking of {month:%Y-%m} to compare with (ranking_overall ranks "
                             f"{_span(published_months)}; the metrics DAG's analyse writes it)")

    # as analysis.run: every area with a figure but England, ranked if it existed in the month
    areas = sorted(set(mv["area_code"]) - {ENGLAND})
    _, candidate = analysis.rank_period(analysis.ranking_values(mv, methodology, month), methodology, areas, month,
                                        geography.code_changes())
    result = Preview(month=month, methodology=methodology, candidate=candidate, names=names)
    if compare or with_flags:
        starts = pd.to_datetime(published_all["period_start"])
        result.published = published_all[starts == month].reset_index(drop=True)
    if with_flags:
        rules = flags.load_rules()
        result.rule_set = flags.rule_set_label(rules)
        result.candidate_flags = analysis.month_flags(rules, month, candidate, mv, analysis.track_targets(mv),
                                                      analysis.flag_context(mv, metric_cfg))
        if flags_all is None:
            result.published_flags = pd.DataFrame(columns=["period_start", "area_code", "rule_id", "reason", "rule_set"])
        else:
            result.published_flags = flags_all[pd.to_datetime(flags_all["period_start"]) == month].reset_index(drop=True)
    return result


def league_table(result: Preview) -> pd.DataFrame:
    """The candidate league table: rank, area, score, metrics ranked (unranked areas last)."""
    frame = result.candidate
    return pd.DataFrame({"rank": frame["overall_rank"], "area_code": frame["area_code"],
                         "area_name": frame["area_code"].map(lambda c: result.names.get(c, c)),
                         "score": frame["score"], "metrics_ranked": frame["metrics_ranked"]})


def comparison(result: Preview) -> pd.DataFrame:
    """Each area's published and candidate rank and score and ``change`` (published - candidate:
    positive = up the table, as ``rank_change``), largest moves first; an area ranked by one
    table only comes first, one ranked by neither last."""
    published = result.published[["area_code", "overall_rank", "score"]].rename(
        columns={"overall_rank": "published_rank", "score": "published_score"})
    candidate = result.candidate[["area_code", "overall_rank", "score"]].rename(
        columns={"overall_rank": "candidate_rank", "score": "candidate_score"})
    frame = published.merge(candidate, on="area_code", how="outer")
    frame["published_rank"] = frame["published_rank"].astype("Int64")
    frame["candidate_rank"] = frame["candidate_rank"].astype("Int64")
    frame["change"] = frame["published_rank"] - frame["candidate_rank"]
    frame.insert(1, "area_name", frame["area_code"].map(lambda c: result.names.get(c, c)))
    one_side = frame["published_rank"].isna() != frame["candidate_rank"].isna()
    order = frame["change"].abs().astype("Float64").fillna(-1.0).astype(float)
    order[one_side] = float("inf")
    frame = frame.assign(_order=order).sort_values(["_order", "candidate_rank", "published_rank", "area_code"],
                                                    ascending=[False, True, True, True], na_position="last")
    return frame.drop(columns="_order").reset_index(drop=True)


def comparison_summary(result: Preview, table: pd.DataFrame) -> str:
    """One line: how many areas moved, the largest rise and fall, the Spearman rank correlation."""
    from scipy.stats import spearmanr

    both = table.dropna(subset=["published_rank", "candidate_rank"])
    moved = both[both["change"] != 0]
    parts = [f"{len(moved)} of {len(both)} areas ranked by both move"]
    for label, row in (("largest rise", moved.loc[moved["change"].idxmax()] if (moved["change"] > 0).any() else None),
                       ("largest fall", moved.loc[moved["change"].idxmin()] if (moved["change"] < 0).any() else None)):
        if row is not None:
            parts.append(f"{label} {row['area_name']} {row['published_rank']} -> {row['candidate_rank']} ({int(row['change']):+d})")
    only_published = int((table["published_rank"].notna() & table["candidate_rank"].isna()).sum())
    only_candidate = int((table["published_rank"].isna() & table["candidate_rank"].notna()).sum())
    if only_published:
        parts.append(f"{only_published} no longer ranked")
    if only_candidate:
        parts.append(f"{only_candidate} newly ranked")
    if len(both) > 1:
        rho = spearmanr(both["published_rank"].astype(float), both["candidate_rank"].astype(float)).statistic
        parts.append(f"Spearman rank correlation {rho:.4f}")
    return (f"{result.methodology.label} against the published {result.published_label or '(unlabelled)'} "
            f"for {result.month:%B %Y}: " + "; ".join(parts))


def flag_changes(result: Preview) -> pd.DataFrame:
    """The review flags (area and rule) the candidate table would give that were not published
    (``change`` new) and those published it would not give (gone), with the reason."""
    key = ["area_code", "rule_id"]
    candidate = result.candidate_flags[[*key, "reason"]]
    published = result.published_flags[[*key, "reason"]]
    both = published.merge(candidate, on=key, how="outer", suffixes=("_published", "_candidate"), indicator=True)
    both = both[both["_merge"] != "both"]
    frame = pd.DataFrame({
        "change": both["_merge"].map({"right_only": "new", "left_only": "gone"}),
        "area_code": both["area_code"],
        "area_name": both["area_code"].map(lambda c: result.names.get(c, c)),
        "rule_id": both["rule_id"],
        "reason": both["reason_candidate"].where(both["_merge"] == "right_only", both["reason_published"]),
    })
    return frame.sort_values(["change", "rule_id", "area_code"], ascending=[False, True, True]).reset_index(drop=True)


def flags_summary(result: Preview, changes: pd.DataFrame) -> str:
    """One line: flags published and under the candidate, new and gone, areas newly flagged or cleared."""
    areas_published = set(result.published_flags["area_code"])
    areas_candidate = set(result.candidate_flags["area_code"])
    new, gone = int((changes["change"] == "new").sum()), int((changes["change"] == "gone").sum())
    published_sets = sorted(set(result.published_flags.get("rule_set", pd.Series(dtype=str)).dropna()))
    line = (f"review flags of {result.month:%B %Y}: {len(result.published_flags)} published "
            f"({len(areas_published)} areas), {len(result.candidate_flags)} with {result.methodology.label} "
            f"({len(areas_candidate)} areas): {new} new, {gone} gone; areas newly flagged {len(areas_candidate - areas_published)}, "
            f"no longer flagged {len(areas_published - areas_candidate)}")
    if published_sets and published_sets != [result.rule_set]:
        line += (f" (the rules changed since: published with {', '.join(published_sets)}, now {result.rule_set}; "
                 "some changes are theirs)")
    return line
