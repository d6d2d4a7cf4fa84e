"""Drift told apart from code, on the shop's own data (not the demo).

Three commits pass on the days up to the 10th: prices and sizes together, prices alone, sizes
alone. Then two days arrive that the suite's champion (prices alone) has never seen:
- the 11th: a sale: prices fall and stop following sizes (big orders are cheapest). Returns still follow sizes, so
  the champion falls while the commits that read sizes do not: the champion is the cause;
- the 12th: returns turn around (small orders come back). Every commit falls: the data moved.
The drift report of each day says so, beside the champion's quality by day.
"""

import json
import os
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml

from collab_pipelines import settings
from collab_pipelines.evaluation import champion
from collab_pipelines.evaluation.monitoring import MONITORING
from collab_pipelines.evaluation.prediction_assets import QUALITY_CHECK
from collab_pipelines.evaluation.suites import load_suites
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.evaluation.test_evaluation import evaluate
from collab_pipelines_tests.evaluation.test_sensor import Ticks
from collab_pipelines_tests.product import jobs, team
from collab_pipelines_tests.product.test_predictions import exported, predict
from collab_pipelines_tests.reports.helpers import execute

SEEN, CHEAP_BIG_ORDERS, RETURNS_TURNED = "2024-03-10", "2024-03-11", "2024-03-12"
REPORT = "returns_drift_report"


def features(*columns: str) -> str:
    kept = ", ".join(f'"{c}": f["{c}"]' for c in columns)
    return (
        "import pandas as pd\n\ndef build(frames):\n    f = frames['orders']\n"
        f'    return pd.DataFrame({{"id": f["id"], "placed_at": f["placed_at"], "returned": f["returned"], {kept}}})\n'
    )


def change_source(sql: str, day: str) -> None:
    engine = sa.create_engine(os.environ[team.SOURCE_ENV])
    with engine.begin() as connection:
        connection.execute(
            sa.text(sql + " WHERE placed_at >= :day AND placed_at < date(:day, '+1 day')"), {"day": day}
        )
    engine.dispose()


def rendered_text(result) -> str:
    [materialization] = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    ]
    notebook = json.loads(Path(materialization.metadata["notebook"].value).read_text())
    texts = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            texts.append("".join(data.get("text/markdown", "")) + "".join(data.get("text/plain", "")))
            texts.append("".join(output.get("text", "")))
    return "\n".join(texts)


def test_the_quality_check_tells_the_data_from_the_champion_and_the_drift_report_shows_it(
    shop, state_dir, instance
):
    raw = yaml.safe_load(shop["suites_file"].read_text())
    raw["suites"]["returns"]["predictions"]["challengers"] = 2
    shop["suites_file"].write_text(yaml.safe_dump(raw))
    repo = shop["repo"]
    prices_alone = repo.commit("Prices alone", {"features.py": features("amount")})
    repo.commit("Sizes alone", {"features.py": features("items")})

    exported(instance, end=SEEN)
    ticks = Ticks(instance)
    keys = ticks.keys()
    assert len(keys) == 3
    for key in keys:
        result = evaluate(instance, key)
        assert result.success, result.all_events
    [champion_key] = [key for key in keys if prices_alone[:10] in key]
    warehouse = Warehouse()
    suite = load_suites(settings.suites_file())["returns"]
    champion.promote(warehouse, suite, champion_key, "ada", "prices tell returns", "run-1")

    change_source("UPDATE orders SET amount = (9 - items) * 2", CHEAP_BIG_ORDERS)
    change_source("UPDATE orders SET returned = 1 - returned", RETURNS_TURNED)
    defs = exported(instance, start=CHEAP_BIG_ORDERS)

    checks, reports = {}, {}
    for day in (SEEN, CHEAP_BIG_ORDERS, RETURNS_TURNED):
        result = predict(defs, instance, day)
        assert result.success, result.all_events
        checks[day] = {c.check_name: c for c in result.get_asset_check_evaluations()}[QUALITY_CHECK]
        report = execute(jobs.render_returns_drift_report, instance, partition=day)
        assert report.success, report.all_events
        reports[day] = rendered_text(report)

    ordinary, cheap, turned = checks[SEEN], checks[CHEAP_BIG_ORDERS], checks[RETURNS_TURNED]
    assert ordinary.passed, ordinary.description
    assert "cause" not in ordinary.metadata  # nobody else is scored on an ordinary day

    assert not cheap.passed, cheap.description
    assert cheap.metadata["cause"].value == "champion", cheap.description
    assert "the champion is the cause" in cheap.description
    better = cheap.metadata["better"].value
    assert better and champion_key not in better

    assert not turned.passed and turned.severity == dg.AssetCheckSeverity.ERROR, turned.description
    assert turned.metadata["cause"].value == "data", turned.description
    assert "every one of the 2 latest passing evaluation(s)" in turned.description

    watch = warehouse.read(MONITORING)
    causes = watch[watch["measure"] == "cause"].set_index("day")["verdict"].to_dict()
    assert causes == {CHEAP_BIG_ORDERS: "champion", RETURNS_TURNED: "data"}
    scored = watch[(watch["measure"] == "metric") & (watch["name"] == "roc_auc")]
    assert set(scored[scored["day"] == SEEN]["role"]) == {"champion"}
    assert len(scored[scored["day"] == RETURNS_TURNED]) == 3  # the champion and two challengers
    amount = watch[(watch["measure"] == "drift") & (watch["name"] == "amount")].set_index("day")
    assert amount.loc[CHEAP_BIG_ORDERS, "verdict"] == "error"
    assert amount.loc[SEEN, "verdict"] == "ok"

    assert "Cause of the fall: champion" in reports[CHEAP_BIG_ORDERS]
    assert "Cause of the fall: data" in reports[RETURNS_TURNED]
    assert "Cause of the fall" not in reports[SEEN]
    assert "`amount`" in reports[CHEAP_BIG_ORDERS]  # the column that moved, named
    assert "Not compared on this day" in reports[SEEN]
