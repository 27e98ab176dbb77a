"""What deploy/'s PromQL reads: the metric names in an expression, the names sdksign's
metrics module defines, and the rule and dashboard files themselves."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.conftest import ROOT

RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yaml"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "sdksign.json"

# A histogram's series are read by these names; the metric is defined without them.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Words of PromQL that are not followed by "(" and are not metric names.
KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "bool", "inf", "nan", "atan2"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
# Label matchers, ranges and subqueries, grouping label lists, Grafana's variables.
_NOT_NAMES = re.compile(
    r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)|\$\w+"
)
_IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` reads, a histogram's by the metric's own name."""
    bare = _NOT_NAMES.sub(" ", _STRING.sub('""', expr))
    names = {name for name in _IDENTIFIER.findall(bare) if name.lower() not in KEYWORDS}
    return {_histogram(name) for name in names}


def _histogram(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def defined_metrics() -> set[str]:
    """The names /metrics shows, as sdksign.server.observe.metrics defines them: a counter's with
    `_total`, a histogram's without its suffixes."""
    from sdksign.server.observe import exposition

    shown = exposition.registry(exposition.ServerState(lambda: None))
    names = set()
    for family in shown.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yaml, of every group."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    """The dashboard's panels, those inside collapsed rows too (rows themselves left out)."""
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        found += panel.get("panels", []) if panel["type"] == "row" else [panel]
    return found


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard: its panels' and its variables' queries."""
    exprs = [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return [_label_values(expr) for expr in exprs]


def _label_values(query: str) -> str:
    """Grafana's `label_values(SELECTOR, label)` as the selector it reads."""
    match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
    return match.group(1) if match else query
