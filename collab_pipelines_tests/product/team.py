"""A team that is not the demo: its own product database, configuration folder and model repository.

The shop's orders, a daily export of them, a suite watching a churn-style classifier, and
nothing else: the product's shipped templates and the patterns do the rest.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml

FIRST_DAY = datetime(2024, 3, 1)
DAYS = 12
ORDERS_PER_DAY = 80
SOURCE_ENV = "SHOP_DATABASE_URL"
SUITE = "returns"
# Everything the demo defines; none of it may appear in the product.
DEMO_ASSETS = {
    "flights",
    "weather",
    "airlines",
    "airports",
    "planes",
    "flights_quality_report",
    "weather_observations",
    "weather_observations_uploads",
}
DEMO_TABLES = DEMO_ASSETS | {"replay_clock", "collab_demo_marker"}
DEMO_JOBS = {"advance_replay_clock"}
DEMO_SCHEDULES = {"replay_clock_schedule"}

CATALOG = {
    "connections": {
        "shop": {"description": "The shop's order database.", "url_env": SOURCE_ENV},
    },
    "exports": [
        {
            "name": "orders",
            "connection": "shop",
            "description": "Every order placed in the shop, one row per order, by local day.",
            "owners": ["team:shop-data"],
            "sql": (
                "SELECT id, placed_at, amount, items, region, returned FROM orders\n"
                "WHERE placed_at >= :partition_start AND placed_at < :partition_end\n"
            ),
            "partition": {"column": "placed_at", "start": "2024-03-01", "end": "2024-04-01"},
            "primary_key": ["id"],
            "columns": {
                "id": "integer",
                "placed_at": "datetime",
                "amount": "float",
                "items": "integer",
                "region": "string",
                "returned": "integer",
            },
        }
    ],
}

CONTRACT = """
[model]
entry_point = "model:build"
[data]
dataset = "orders"
time_column = "placed_at"
row_id = "id"
target = "returned"
features = "features:build"
[evaluation]
metrics = ["roc_auc", "accuracy"]
test_days = 3
[gates.roc_auc]
min = 0.55
"""
FEATURES = """
import pandas as pd

def build(frames):
    f = frames["orders"]
    return pd.DataFrame({"id": f["id"], "placed_at": f["placed_at"], "returned": f["returned"],
                         "amount": f["amount"], "items": f["items"]})
"""
MODEL = """
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

def build():
    return Pipeline([("scale", StandardScaler()), ("classifier", LogisticRegression())])
"""
MODEL_FILES = {"collab.toml": CONTRACT, "features.py": FEATURES, "model.py": MODEL}


def orders() -> pd.DataFrame:
    """Orders whose returns depend on their size, so a model has something real to learn."""
    rng = np.random.default_rng(12)
    count = DAYS * ORDERS_PER_DAY
    day = np.repeat(np.arange(DAYS), ORDERS_PER_DAY)
    minutes = rng.integers(0, 24 * 60, count)
    items = rng.integers(1, 9, count)
    amount = np.round(items * rng.uniform(5, 40, count), 2)
    returned = (rng.uniform(0, 1, count) < 0.1 + 0.08 * items).astype(int)
    return pd.DataFrame(
        {
            "id": np.arange(1, count + 1),
            "placed_at": [
                FIRST_DAY + timedelta(days=int(d), minutes=int(m)) for d, m in zip(day, minutes, strict=True)
            ],
            "amount": amount,
            "items": items,
            "region": rng.choice(["north", "south", "east"], count),
            "returned": returned,
        }
    )


def create_source(url: str) -> pd.DataFrame:
    frame = orders()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        frame.to_sql("orders", connection, index=False)
    engine.dispose()
    return frame


def write_config(folder: Path, repository: Path) -> Path:
    """The team's configuration folder: its catalog and its suites, nothing of the demo."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.yaml").write_text(yaml.safe_dump(CATALOG, sort_keys=False))
    write_suites(folder, repository)
    return folder


def write_suites(folder: Path, repository: Path) -> Path:
    """The team's suites file: the returns model in `repository`, on its main branch."""
    suites = {
        "suites": {
            SUITE: {
                "repositories": {"model": {"location": str(repository), "branches": ["main"]}},
                "limits": {"seconds": 120, "memory_mb": 3072},
            }
        }
    }
    path = folder / "suites.yaml"
    path.write_text(yaml.safe_dump(suites, sort_keys=False))
    return path
