"""The methodology config is checked when it is read, by every loader, by ``carewatch
check-config`` and before ``carewatch run`` starts: each mistake is one line naming the file and
the key (the methodology owner's review, H1-H3, M2, M3)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from carewatch import cli, paths, summary, warehouse
from carewatch.errors import ConfigError
from carewatch.methodology import config_check, flags, peers, ranking, targets

SHIPPED = paths.config_dir()
METHOD = "methodology/dashboard-2018.yaml"
FLAGS = "review_flags.yaml"
TARGETS = "targets/expectations-2017-18.yaml"
DTOC = "delayed_days_per_day_per_100k_18plus"


@pytest.fixture
def config(tmp_path, monkeypatch):
    """A copy of the shipped config directory, in force (CAREWATCH_CONFIG)."""
    copy = tmp_path / "config"
    shutil.copytree(SHIPPED, copy)
    monkeypatch.setenv("CAREWATCH_CONFIG", str(copy))
    return copy


def edit(config, name: str, old: str, new: str) -> None:
    path = config / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new, 1))


def load(name: str):
    """The loader that reads ``name`` (each validates what it reads)."""
    if name == "metrics.yaml":
        return warehouse.metric_config()
    if name.startswith("methodology/"):
        return ranking.load_methodology()
    if name == FLAGS:
        return flags.load_rules()
    if name.startswith("targets/"):
        return targets.load_target_sets()
    return peers.load_config()


def test_the_shipped_config_passes():
    assert config_check.check_all(every_methodology=True) == [
        "config/metrics.yaml", "config/methodology/in_force.yaml", "config/methodology/dashboard-2018.yaml",
        "config/review_flags.yaml", "config/targets/expectations-2017-18.yaml", "config/peer_groups.yaml"]


MISTAKES = [
    # H1: named by Python, not by file and key
    (METHOD, "weight: 3", "weight: three", f"config/{METHOD}: metrics[0].weight must be a number, not 'three'"),
    (METHOD, "    weight: 3\n", "", f"config/{METHOD}: metrics[0].weight is missing"),
    (METHOD, "ties: min", "ties: average", f"config/{METHOD}: ties must be min, dense or max, not 'average'"),
    (METHOD, "annual_lag_months: 6", "annual_lag_months: six",
     f"config/{METHOD}: periods.rolling_12m.annual_lag_months must be a whole number, not 'six'"),
    (METHOD, "version: 2 ", "version: 2b ", f"config/{METHOD}: version must be a whole number, not '2b'"),
    ("methodology/in_force.yaml", "methodology: dashboard-2018", "methodology: dashboard-2019",
     "config/methodology/in_force.yaml: methodology 'dashboard-2019' names no file "
     "(config/methodology/dashboard-2019.yaml does not exist)"),
    (FLAGS, "n: 12", "n: twelve", f"config/{FLAGS}: rule 'bottom_of_overall_ranking': n must be a whole number, not 'twelve'"),
    (FLAGS, f"metrics: [{DTOC},", f"metrics: [{DTOC[:-1]},",
     f"config/{FLAGS}: rule 'deterioration_over_12_months': metrics[0] '{DTOC[:-1]}' is not defined in config/metrics.yaml, "
     "nor a breakdown of a metric there (<id>__<agency>, <id>__reason_<reason>)"),
    (TARGETS, f"metric: {DTOC}", "metric: total", f"config/{TARGETS}: metric 'total' is not defined in config/metrics.yaml"),
    (TARGETS, "component: social_care", "component: social-care",
     f"config/{TARGETS}: test 'met_september_social_care_expectation': component must be total, nhs or social_care, not 'social-care'"),
    (TARGETS, "national_ambition: 9.4", "national_ambition: 9,4", f"config/{TARGETS}: national_ambition must be a number, not '9,4'"),
    # H2: a direction other than low or high
    ("metrics.yaml", "direction: low", "direction: Low", "config/metrics.yaml: metrics[0].direction must be low or high, not 'Low'"),
    # H3: silent mistakes that empty a league table, a target set or a flag rule
    (METHOD, "min_metrics: 4", "min_metrics: 7",
     f"config/{METHOD}: min_metrics must be at most the number of metrics (6), not 7: no area could be ranked"),
    (TARGETS, "valid_to: 2018-03", "valid_to: 2017-03",
     f"config/{TARGETS}: valid_to (2017-03) is before valid_from (2017-09): no month would be tracked"),
    (FLAGS, f"metric: {DTOC}", "metric: delayed_days",
     f"config/{FLAGS}: rule 'bottom_quartile_dtoc_little_improvement': metric 'delayed_days' is not defined in config/metrics.yaml, "
     "nor a breakdown of a metric there (<id>__<agency>, <id>__reason_<reason>)"),
    (FLAGS, "level: 0.998", "level: 99.8",
     f"config/{FLAGS}: rule 'funnel_outlier': level must be a level between 0 and 1 (0.998 for 99.8%), not 99.8"),
    (FLAGS, "margin: 8.0", "margin: -8.0", f"config/{FLAGS}: rule 'dtoc_target_missed_repeatedly': margin must be a number at least 0, not -8.0"),
    (FLAGS, "months: 6", "months: 0", f"config/{FLAGS}: rule 'dtoc_target_missed_repeatedly': months must be a whole number at least 1, not 0"),
    # M3: more silent oddities
    (METHOD, "weight: 1", "weight: -1",
     f"config/{METHOD}: metrics[1].weight must be a number at least 0 (scores are weighted means: only the weights' ratios matter), not -1"),
    (METHOD, "  - id: los_p90_days_65plus", "  - id: emergency_admissions_65plus_per_100k",
     f"config/{METHOD}: metrics: listed twice: 'emergency_admissions_65plus_per_100k'"),
    (FLAGS, "    enabled: true", '    enabled: "no"', f"config/{FLAGS}: rule 'bottom_of_overall_ranking': enabled must be true or false, not 'no'"),
    (FLAGS, "id: funnel_outlier", "id: bottom_of_overall_ranking", f"config/{FLAGS}: rules: two rules with id 'bottom_of_overall_ranking'"),
    # and a misspelt key, which would otherwise fall back to its default
    (METHOD, "min_metrics: 4", "min_metric: 4", f"config/{METHOD}: min_metric is not a known key (misspelt?)"),
]


@pytest.mark.parametrize("name, old, new, line", MISTAKES, ids=[f"{m[0]}:{m[2].strip()}" for m in MISTAKES])
def test_each_mistake_is_refused_in_one_line_naming_file_and_key(config, name, old, new, line):
    edit(config, name, old, new)
    with pytest.raises(ConfigError) as by_loader:
        load(name)
    assert by_loader.value.problems == [line]
    with pytest.raises(ConfigError) as by_check:
        config_check.check_all()
    assert by_check.value.problems == [line]


def test_all_weights_0_are_refused(config):
    path = config / METHOD
    path.write_text(path.read_text().replace("weight: 3", "weight: 0").replace("weight: 1", "weight: 0.0"))
    with pytest.raises(ConfigError) as bad:
        ranking.load_methodology()
    assert bad.value.problems == [
        f"config/{METHOD}: metrics: the weights must not all be 0 (only their ratios matter: a score is a weighted mean)"]


def test_several_mistakes_are_listed_one_line_each(config):
    edit(config, METHOD, "weight: 3", "weight: three")
    edit(config, METHOD, "ties: min", "ties: average")
    edit(config, FLAGS, "n: 12", "n: twelve")
    with pytest.raises(ConfigError) as bad:
        config_check.check_all()
    assert str(bad.value).splitlines() == [
        f"config/{METHOD}: ties must be min, dense or max, not 'average'",
        f"config/{METHOD}: metrics[0].weight must be a number, not 'three'",
        f"config/{FLAGS}: rule 'bottom_of_overall_ranking': n must be a whole number, not 'twelve'",
    ]


def test_a_direction_typo_is_refused_by_every_reader_of_metrics_yaml(config):
    # ranking read "Low" as high, the bottom-quartile rule as low (H2): now neither reads it
    edit(config, "metrics.yaml", "direction: low", "direction: Low")
    for read in (warehouse.metric_config, ranking.load_methodology, flags.load_rules):
        with pytest.raises(ConfigError, match=r"metrics\[0\]\.direction must be low or high, not 'Low'"):
            read()


# ---------------------------------------------------------------- peer-group file (M2)

def _peer_file(config, rows: list[tuple], header: str = "area_code,peer_code,peer_rank") -> None:
    """A complete, valid file (each HWB area's two next codes as peers) with ``rows`` appended."""
    codes = sorted(pd.read_csv(config / "geography" / "hwb_areas.csv", dtype=str)["hwb_code"])
    lines = [header]
    for i, code in enumerate(codes):
        lines += [f"{code},{codes[(i + 1) % len(codes)]},1", f"{code},{codes[(i + 2) % len(codes)]},2"]
    lines += [",".join(map(str, row)) for row in rows]
    (config / "peers").mkdir(exist_ok=True)
    (config / "peers" / "cipfa.csv").write_text("\n".join(lines) + "\n")
    edit(config, "peer_groups.yaml", "method: nearest_neighbours\nk", "method: file\nk")
    edit(config, "peer_groups.yaml", "file: null", "file: peers/cipfa.csv")


def test_a_valid_peer_file_is_read_relative_to_the_config_directory(config, monkeypatch):
    _peer_file(config, [])
    groups = peers.peer_groups(config=peers.load_config())
    assert len(groups) == 300 and groups["peer_rank"].dtype.kind == "i"
    hartlepool = groups[groups["area_code"] == "E06000001"].sort_values("peer_rank")
    assert list(hartlepool["peer_code"]) == ["E06000002", "E06000003"]
    # the earlier form, relative to the project (config/peers/...), is still found
    monkeypatch.setattr(paths, "PROJECT_ROOT", config.parent)
    edit(config, "peer_groups.yaml", "file: peers/cipfa.csv", "file: config/peers/cipfa.csv")
    assert len(peers.peer_groups(config=peers.load_config())) == 300
    assert config_check.peer_file_path("config/peers/cipfa.csv") == config / "peers" / "cipfa.csv"


FILE = "config/peers/cipfa.csv"


@pytest.mark.parametrize("rows, line", [
    ([("E06000001", "E06000004", 3), ("E06000001", "E06000004", 4)],
     f"{FILE}: row 303: E06000004 is listed again as a peer of E06000001 (first in row 302)"),
    ([("E06000001", "E07000048", 3)],
     f"{FILE}: row 302: peer_code 'E07000048' is not an HWB area (config/geography/hwb_areas.csv, or an area created later in code_changes.csv)"),
    ([("E06000001", "BOGUS", 3)],
     f"{FILE}: row 302: peer_code 'BOGUS' is not an HWB area (config/geography/hwb_areas.csv, or an area created later in code_changes.csv)"),
    ([("E06000001", "E06000001", 3)], f"{FILE}: row 302: E06000001 is its own peer"),
    ([("E06000001", "E06000004", "third")], f"{FILE}: row 302: peer_rank must be a whole number from 1, not 'third'"),
    ([("E06000001", "E06000004", 0)], f"{FILE}: row 302: peer_rank must be a whole number from 1, not '0'"),
    ([("E06000001", "E06000004", 2)], f"{FILE}: row 302: peer_rank 2 of E06000001 again (first in row 3)"),
])
def test_a_bad_peer_file_row_is_refused_naming_file_and_row(config, rows, line):
    _peer_file(config, rows)
    with pytest.raises(ConfigError) as bad:
        peers.load_config()
    assert bad.value.problems == [line]


def test_every_hwb_area_needs_a_group_in_a_peer_file_but_an_area_created_later_may_have_one(config):
    _peer_file(config, [("E06000058", "E06000059", 1), ("E06000059", "E06000058", 1)])  # BCP and Dorset, April 2019
    assert set(peers.load_config()) >= {"method", "file"}
    text = (config / "peers" / "cipfa.csv").read_text()
    (config / "peers" / "cipfa.csv").write_text("".join(l + "\n" for l in text.splitlines() if not l.startswith("E06000001,")))
    with pytest.raises(ConfigError) as bad:
        peers.load_config()
    assert bad.value.problems == [f"{FILE}: no peer group for 1 HWB area(s) of config/geography/hwb_areas.csv: E06000001"]


def test_a_peer_file_that_is_not_there_is_named(config):
    edit(config, "peer_groups.yaml", "method: nearest_neighbours\nk", "method: file\nk")
    edit(config, "peer_groups.yaml", "file: null", "file: peers/none.csv")
    with pytest.raises(ConfigError) as bad:
        config_check.check_all()
    assert bad.value.problems == ["config/peer_groups.yaml: file 'peers/none.csv': config/peers/none.csv does not exist "
                                  "(a path relative to the config directory)"]


# ---------------------------------------------------------------- a target baseline outside the data (H3)

def test_a_baseline_month_without_figures_is_refused_at_analysis(config):
    edit(config, TARGETS, "baseline_period: 2017-02", "baseline_period: 2010-02")
    target_set = targets.load_target_set()  # a valid month: the file alone cannot tell
    rows = [{"area_code": "A", "period_start": pd.Timestamp(month), "agency": agency, "value": value}
            for month in ("2017-02-01", "2017-09-01") for agency, value in (("total", 10.0), ("nhs", 6.0), ("social_care", 4.0))]
    with pytest.raises(ConfigError) as bad:
        targets.track(pd.DataFrame(rows), target_set)
    assert bad.value.problems == [f"config/{TARGETS}: baseline_period 2010-02 has no figures of {DTOC} "
                                  "(the months loaded: 2017-02 to 2017-09): no area could be tracked against it"]
    # a set whose months are not loaded yet tracks nothing, rightly: not refused
    later = rows[:3]
    assert targets.track(pd.DataFrame(later), target_set).empty


# ---------------------------------------------------------------- carewatch check-config, carewatch run, the summary

def test_check_config_says_ok_or_prints_each_line_and_exits_1(config, capsys):
    assert cli.main(["check-config"]) == 0
    assert capsys.readouterr().out.startswith("OK: 6 methodology config files checked (config/metrics.yaml, ")
    edit(config, METHOD, "weight: 3", "weight: three")
    edit(config, "metrics.yaml", "direction: low", "direction: Low")
    assert cli.main(["check-config"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["config/metrics.yaml: metrics[0].direction must be low or high, not 'Low'",
                   "carewatch: 1 problem(s) in the methodology config"]  # the methodology is not checked against a broken metrics.yaml
    edit(config, "metrics.yaml", "direction: Low", "direction: low")
    assert cli.main(["check-config"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == f"config/{METHOD}: metrics[0].weight must be a number, not 'three'"


def test_check_config_checks_a_methodology_file_not_in_force_too(config, capsys):
    (config / "methodology" / "dashboard-2019.yaml").write_text(
        (config / METHOD).read_text().replace("method: weighted_ranks", "method: weighted"))
    config_check.check_all()  # the run reads only the file in force
    assert cli.main(["check-config"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "config/methodology/dashboard-2019.yaml: method must be weighted_ranks or weighted_z, not 'weighted'")


def test_carewatch_run_refuses_a_bad_config_before_it_starts_anything(config, carewatch_home, capsys, monkeypatch):
    from carewatch import runner, sample_server

    def started(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(sample_server, "serve_samples", started)
    monkeypatch.setattr(runner, "airflow_env", started)
    edit(config, METHOD, "weight: 3", "weight: three")
    assert cli.main(["run"]) == 2
    assert capsys.readouterr().err == f"carewatch: config/{METHOD}: metrics[0].weight must be a number, not 'three'\n"
    assert not carewatch_home.exists()  # no raw store, warehouse, logs or lock


def test_the_run_summary_prints_the_config_lines_instead_of_crashing(config, carewatch_home, tmp_path, capsys):
    from tests import synthetic_warehouse

    carewatch_home.mkdir()
    synthetic_warehouse.build(paths.warehouse_path())
    edit(config, METHOD, "weight: 3", "weight: three")
    summary.print_run_summary({"metrics": "failed"}, tmp_path / "run.log")
    out = capsys.readouterr().out
    assert ("Results not shown: the methodology config is refused (carewatch check-config):\n"
            f"  config/{METHOD}: metrics[0].weight must be a number, not 'three'\n") in out
    assert "Outputs:" in out  # the rest of the summary follows


def test_a_flag_rule_may_test_a_breakdown_of_a_metric_as_fct_metric_values_names_it(config):
    # a review: the checks refused what the rules read and the code supports (the social care
    # share of delayed days, a delay reason), which was accepted before the checks
    edit(config, FLAGS, f"metrics: [{DTOC},", f"metrics: [{DTOC}__social_care, {DTOC}__reason_A,")
    edit(config, FLAGS, f"metric: {DTOC}", f"metric: {DTOC}__nhs")
    config_check.check_all()
    rules = {rule["id"]: rule for rule in flags.load_rules()["rules"]}
    assert rules["bottom_quartile_dtoc_little_improvement"]["metric"] == f"{DTOC}__nhs"
    # a breakdown the metric does not have is refused
    edit(config, FLAGS, f"metric: {DTOC}__nhs", f"metric: {DTOC}__reason_Z")
    with pytest.raises(ConfigError) as refused:
        config_check.check_all()
    assert refused.value.problems == [
        f"config/{FLAGS}: rule 'bottom_quartile_dtoc_little_improvement': metric '{DTOC}__reason_Z' is not defined in "
        "config/metrics.yaml, nor a breakdown of a metric there (<id>__<agency>, <id>__reason_<reason>)"]
    assert {f"{DTOC}__both", f"{DTOC}__reason_Dii"} <= config_check.breakdown_ids(config_check.metrics_file())


def test_a_number_in_exponent_form_that_yaml_reads_as_text_says_how_to_write_it(config):
    # YAML 1.1 (PyYAML) reads 1e-3 as the text '1e-3'; "must be a number, not '1e-3'" misled
    edit(config, METHOD, "weight: 3", "weight: 1e-3")
    with pytest.raises(ConfigError) as refused:
        config_check.check_all()
    assert refused.value.problems == [
        f"config/{METHOD}: metrics[0].weight must be a number, not '1e-3' (YAML reads it as text: write 0.001)"]
    edit(config, METHOD, "weight: 1e-3", "weight: 0.001")
    config_check.check_all()


def test_target_sets_tracking_two_different_metrics_are_refused(config):
    # the report draws one metric against its targets: a second set on another metric (one with
    # an agency breakdown, so the set itself is valid) is refused by check-config
    edit(config, "metrics.yaml", 'headline ("Total") disaggregation.\n',
         'headline ("Total") disaggregation.\n    breakdowns:\n      agency: [nhs, social_care, both]\n')
    text = (config / TARGETS).read_text()
    (config / "targets" / "reablement-2017-18.yaml").write_text(
        text.replace("name: dtoc-expectations-2017-18", "name: reablement-2017-18")
            .replace(f"metric: {DTOC}", "metric: reablement_still_at_home_91d_65plus"))
    with pytest.raises(ConfigError) as refused:
        config_check.check_all()
    assert refused.value.problems == [
        "config/targets: the target sets track different metrics (delayed_days_per_day_per_100k_18plus, "
        "reablement_still_at_home_91d_65plus); the report draws one metric against its targets"]


def test_a_target_set_of_one_month_passes_and_one_on_a_metric_without_agency_breakdown_is_refused(config):
    edit(config, TARGETS, "valid_to: 2018-03", "valid_to: 2017-09")  # valid_from 2017-09: one month tracked
    assert TARGETS in " ".join(config_check.check_all())
    edit(config, TARGETS, f"metric: {DTOC}", "metric: reablement_still_at_home_91d_65plus")
    with pytest.raises(ConfigError) as refused:
        config_check.check_all()
    assert refused.value.problems == [
        f"config/{TARGETS}: metric 'reablement_still_at_home_91d_65plus' has no agency breakdown "
        "(breakdowns: agency: [nhs, social_care, both] in config/metrics.yaml)"]
