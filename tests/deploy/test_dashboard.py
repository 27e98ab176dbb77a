"""deploy/grafana/sdksign.json: a dashboard Grafana can import (JSON, unique panel ids, a
data source variable every query goes through, a PromQL expression in every target), over
the metrics sdksign.server.observe.metrics defines, every sdksign_ one shown."""

from __future__ import annotations

import json
import re

from tests.deploy.promql import (
    DASHBOARD,
    dashboard,
    dashboard_exprs,
    dashboard_panels,
    defined_metrics,
    metric_names,
    rules,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_it_is_json_with_unique_ids_and_a_grid() -> None:
    json.loads(DASHBOARD.read_text())  # raises on a broken file
    whole = dashboard()
    assert whole["uid"] == "sdksign" and whole["title"]
    # Rows and the panels in them (a collapsed row holds its own).
    every = [
        *whole["panels"],
        *(inner for row in whole["panels"] for inner in row.get("panels", [])),
    ]
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for panel in every:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


def test_every_panel_queries_prometheus_through_the_variable() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard_panels()
    assert len(panels) >= 15
    for panel in panels:
        assert panel["title"] and panel.get("description"), panel
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
            # Every series of the chosen job and replicas only.
            for selector in re.findall(r"\b(?:sdksign|grpc_server)_\w+\{([^}]*)\}", target["expr"]):
                assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector


def test_it_has_the_panels_an_operator_looks_for() -> None:
    titles = {panel["title"] for panel in dashboard_panels()}
    wanted = {
        "Calls by method and code",
        "Server error ratio",
        "Latency p50 and p99 by method",
        "Tokens issued by app, kind, role and caller",
        "Refusals by caller and rule",
        "Verify results by app and validity",
        "Problems Verify found, by code",
        "Configuration reloads by result",
        "Since the last successful reload",
        "Age of the secrets that sign",
        "Worker restarts",
        "Ready by replica",
    }
    assert wanted - titles == set()


def test_every_metric_it_reads_is_defined_and_every_sdksign_metric_is_shown() -> None:
    used = {name for expr in dashboard_exprs() for name in metric_names(expr)}
    defined = defined_metrics()
    assert used - defined == set()
    assert {name for name in defined if name.startswith("sdksign_")} - used == set()


def test_its_error_ratio_leaves_out_the_codes_the_alert_leaves_out() -> None:
    def excluded(expr: str) -> list[str]:
        return re.findall(r'grpc_code!~"([^"]*)"', expr)

    [alert] = [rule["expr"] for rule in rules() if rule["alert"] == "SdksignHighErrorRatio"]
    ratios = [p for p in dashboard_panels() if p["title"] == "Server error ratio"]
    assert len(ratios) == 2  # the stat and the graph
    codes = {code for expr in excluded(alert) for code in expr.split("|")}
    assert {"INVALID_ARGUMENT", "CANCELLED", "OK"} < codes and "INTERNAL" not in codes
    for panel in ratios:
        [target] = panel["targets"]
        assert set(excluded(target["expr"])) == set(excluded(alert)), panel["id"]


def test_its_windows_follow_the_zoom_and_its_rates_say_per_second() -> None:
    """A fixed window ([5m]) misses what falls between two points of a wide range and
    smears a narrow one: only Grafana's $__rate_interval (at least 4 scrapes, and one more
    than the step) or, in an instant query, $__range. A panel of rates is per second; a
    panel of counts is not."""
    for panel in dashboard_panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for window in re.findall(r"\[([^\]]*)\]", expr):
                assert window in {"$__rate_interval", "$__range"}, (panel["title"], window)
            if "[$__range]" in expr:
                assert target.get("instant") is True, panel["title"]
            outer = re.match(r"\s*(?:sum|max) by \([^)]*\) \((rate|increase)\(", expr)
            if outer:
                per_second = panel["fieldConfig"]["defaults"]["unit"] in {"reqps", "ops"}
                assert per_second == (outer[1] == "rate"), panel["title"]
