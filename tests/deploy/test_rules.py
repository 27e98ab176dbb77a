"""deploy/prometheus/alerts.yaml (and prometheus.yml, which loads it): valid for Debian's
promtool, each alert unit-tested (alerts_test.yaml: fires on a bad series, quiet on a good
one), every metric it reads defined by sdksign.server.observe.metrics, every alert with what an
operator needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sdksign.server.config.model import DEFAULT_ADMIN_LISTEN
from tests.conftest import ROOT
from tests.deploy.promql import (
    RULE_TESTS,
    RULES,
    SCRAPE_CONFIG,
    dashboard_panels,
    defined_metrics,
    metric_names,
    rules,
)

PROMTOOL = Path("/usr/bin/promtool")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL.exists(), "promtool not found: make test installs Debian's prometheus"
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_checks_the_rules() -> None:
    checked = promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_promtool_checks_the_example_configuration_and_its_rules() -> None:
    checked = promtool("check", "config", SCRAPE_CONFIG)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_the_example_scrapes_the_server_s_default_admin_listener() -> None:
    [job] = yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"]
    assert job["static_configs"] == [{"targets": [DEFAULT_ADMIN_LISTEN]}]


def test_promtool_unit_tests_pass() -> None:
    tested = promtool("test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_unit_tests_fail_when_a_threshold_moves(tmp_path: Path) -> None:
    """The unit tests hold the thresholds: an error ratio alert at 50% misses the bad job."""
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    text = RULES.read_text()
    assert text.count("> 0.05\n") == 1
    (tmp_path / RULES.name).write_text(text.replace("> 0.05\n", "> 0.5\n"))
    tested = promtool("test", "rules", tmp_path / RULE_TESTS.name)
    assert tested.returncode == 1, tested.stdout
    assert "alertname: SdksignHighErrorRatio" in tested.stderr + tested.stdout


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    """Each alert has a unit test where it fires, and one time or series where it does not."""
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    alerts = {rule["alert"] for rule in rules()}
    assert len(alerts) >= 6
    # Quiet: before its `for:` has passed, and on the good series that stand beside the bad
    # ones in every firing case (promtool wants the alerts listed, no more).
    assert fires == quiet == alerts


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: str(rule.get("alert")))
def test_each_alert_says_how_bad_what_and_what_to_do(rule: dict[str, object]) -> None:
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
    assert rule["labels"] == {"severity": rule["labels"]["severity"]}  # type: ignore[index]
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    assert set(annotations) == {"summary", "description", "runbook"}
    assert all(len(text) > 20 for text in annotations.values())


# Quoted in runbooks as the log line's fields ("event":"rpc", "rule"), not as a line or a panel.
LOG_FIELDS = frozenset({"event", "rpc", "rule"})


def test_what_the_runbooks_quote_is_a_dashboard_panel_or_a_log_line_of_the_server() -> None:
    """A runbook sends the operator to a panel by its title (capitalised) or to a log line by
    its event's first words: each must exist, or the operator looks for nothing."""
    titles = {panel["title"] for panel in dashboard_panels()}
    server = ROOT / "server" / "sdksign" / "server"
    source = "\n".join(path.read_text() for path in sorted(server.rglob("*.py")))
    quoted = [
        (rule["alert"], words)
        for rule in rules()
        for words in re.findall(r'"([^"]+)"', rule["annotations"]["runbook"])
        if words not in LOG_FIELDS
    ]
    assert len(quoted) >= 10
    for alert, words in quoted:
        if words[0].isupper():
            assert words in titles, (alert, words)
        else:
            logged = rf'\w+\.(?:debug|info|warning|error|exception)\(\s*f?"{re.escape(words)}'
            assert re.search(logged, source), (alert, words)


def test_the_docs_table_lists_each_alert_with_its_severity_and_for() -> None:
    """docs/operations.md's "Alerts and a dashboard" table names every alert, the critical ones
    marked, each with its `for:` ("at once" for 0m): a rule changed here changes there too."""
    table = {}
    for row in (ROOT / "docs" / "operations.md").read_text().splitlines():
        if row.startswith("| `Sdksign"):
            first, *_, last = (cell.strip() for cell in row.strip("|").split("|"))
            names, waits = re.findall(r"`(Sdksign\w+)`", first), last.split(", ")
            assert len(names) == len(waits), row
            for name, wait in zip(names, waits, strict=True):
                table[name] = ("critical" if "(critical)" in first else "", wait)
    assert table == {
        rule["alert"]: (
            "critical" if rule["labels"]["severity"] == "critical" else "",
            "at once" if rule["for"] == "0m" else rule["for"],
        )
        for rule in rules()
    }


def test_every_metric_the_rules_read_is_defined() -> None:
    used = {name for rule in rules() for name in metric_names(rule["expr"])}
    assert "sdksign_ready" in used and "grpc_server_handling_seconds" in used
    assert used - defined_metrics() == {"up"}  # Prometheus' own: a target answered its scrape


def test_metric_names_are_read_from_promql() -> None:
    """The check above notices a renamed metric: names come out of any PromQL shape."""
    expr = (
        'sum by (job, le) (rate(x_seconds_bucket{a="b_total",c=~"$v"}[5m] offset 1h)) '
        "/ on (job) group_left () y_total and absent(z) > bool 1e3 or vector(0) unless w"
    )
    assert metric_names(expr) == {"x_seconds", "y_total", "z", "w"}
    assert metric_names("rate(sdksign_tokens_minted_total[5m])") - defined_metrics() == {
        "sdksign_tokens_minted_total"
    }
