"""Reads the PromQL expressions out of the Grafana dashboards and the alert rules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

OBS = ROOT / "observability"
ALERTS = OBS / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((OBS / "grafana" / "dashboards").glob("*.json"))
#: Grafana variables and the values used when evaluating the expressions directly against Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__interval": "2s", "$__range": "1m", "$queue": ".*"}


@dataclass(frozen=True)
class Expr:
    """One PromQL expression and where it comes from."""

    where: str
    promql: str
    kind: str  # "panel", "annotation" or "alert"


def _substitute(expr: str) -> str:
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(name, value)
    return expr


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels", [])))
    return out


def dashboard_exprs(path: Path) -> list[Expr]:
    """Every target expression of every panel, and every annotation query, of one dashboard file."""
    dash = json.loads(path.read_text())
    exprs = []
    for panel in _panels(dash["panels"]):
        for target in panel.get("targets", []):
            if target.get("expr"):
                exprs.append(Expr(f"{path.name}: {panel['title']} [{target['refId']}]",
                                  _substitute(target["expr"]), "panel"))
    for annotation in dash.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            exprs.append(Expr(f"{path.name}: annotation {annotation['name']}", _substitute(annotation["expr"]),
                              "annotation"))
    return exprs


def alert_exprs(path: Path = ALERTS) -> list[Expr]:
    """Every rule expression of the rules file."""
    rules = yaml.safe_load(path.read_text())
    return [
        Expr(f"{path.name}: {rule.get('alert') or rule.get('record')}", str(rule["expr"]), "alert")
        for group in rules["groups"]
        for rule in group["rules"]
    ]


def all_exprs() -> list[Expr]:
    """Every expression of every dashboard and of the alert rules."""
    return [e for path in DASHBOARDS for e in dashboard_exprs(path)] + alert_exprs()
