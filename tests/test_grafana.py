"""The Grafana dashboard reads metrics and tables that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import reelscope.infra.core.metrics as metrics
from reelscope.schemas.tables import ddl

DASHBOARD = Path(__file__).resolve().parents[1] / "infra" / "grafana" / "reelscope-dashboard.json"


def test_every_panel_queries_something_that_exists() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = {m._name for m in vars(metrics).values() if hasattr(m, "_name")}
    tables = set(re.findall(r"EXISTS reelscope\.(\w+)", " ".join(ddl("reelscope", 90))))
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            if "expr" in target:
                names = set(re.findall(r"reelscope_\w+", target["expr"]))
                bases = {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in names}
                assert bases <= exported | {n.removesuffix("_total") for n in exported}, (
                    panel["title"],
                    bases,
                )
            else:
                used = set(re.findall(r"reelscope\.(\w+)", target["rawSql"]))
                assert used and used <= tables, (panel["title"], used - tables)


TITLE_WORDS = {
    "failures": "reelscope_analyzer_failures_total",
    "dead letters": "reelscope_dead_letters_total",
}
"""Words of a panel title and the metric a panel titled with them must query."""


def test_every_quantity_a_title_names_is_queried() -> None:
    """A title that promises p50 and p95, or failures and dead letters, plots each of them."""
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        exprs = " ".join(t.get("expr", "") for t in panel["targets"])
        for percentile in re.findall(r"\bp(\d\d)\b", panel["title"]):
            assert f"histogram_quantile(0.{percentile.rstrip('0')}," in exprs, (panel["title"], percentile)
        for words, metric in TITLE_WORDS.items():
            if words in panel["title"]:
                assert metric in exprs, (panel["title"], metric)
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
