"""Real deployments for the data API: warehouses filled by the export assets, a real server.

Each test process gets one SQLite and (where a server runs) one PostgreSQL warehouse, filled once by
materializing the project's own export assets for the first week of 2013, and one
`collab-data-api` process per warehouse on a loopback port.
"""

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest

from collab_pipelines import settings
from collab_pipelines.data_api.auth import TOKENS_ENV, TOKENS_FILE_ENV, hash_token
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.engine import dispose_engines
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.conftest import new_postgres_database
from collab_pipelines_tests.e2e.processes import Service, free_port, wait_for

TOKEN = "tok-" + uuid.uuid4().hex
FIRST_DAY, LAST_DAY = "2013-01-01", "2013-01-07"
COMMIT_A = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
COMMIT_B = "abcdef0123456789abcdef0123456789abcdef01"
# Small chunks make the test week's rows stream in many pieces, as a year would.
CHUNK_ROWS = 500


@dataclass
class Deployment:
    backend: str
    state_dir: Path
    warehouse_url: str
    dagster_home: Path
    instance: dg.DagsterInstance

    def warehouse(self) -> Warehouse:
        return Warehouse(url=self.warehouse_url)


@dataclass
class Api:
    url: str
    deployment: Deployment
    service: Service

    def get(self, path: str, token: str | None = TOKEN, **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(self.url + path, headers=headers, timeout=60, **kwargs)


def make_deployment(root: Path, source_template: Path, backend: str, warehouse_url: str | None) -> Deployment:
    """An empty deployment: a state folder with the demo source, an instance, a warehouse URL."""
    state_dir = root / "state"
    home = state_dir / "dagster"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    shutil.copy(source_template, state_dir / "product.db")
    url = warehouse_url or settings.sqlite_url(state_dir / "warehouse.db")
    # The suite fill() records evaluations of, as the engineers' suites file names it.
    (state_dir / "suites.yaml").write_text(
        "suites:\n  delay-model:\n    repositories:\n      model: {location: /srv/git/delay-model}\n"
    )
    instance = dg.DagsterInstance.from_config(str(home))
    return Deployment(backend, state_dir, url, home, instance)


def fill(deployment: Deployment) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(settings.STATE_DIR_ENV, str(deployment.state_dir))
        patch.delenv("COLLAB_SOURCE_URL", raising=False)
        _fill(deployment)


def _fill(deployment: Deployment) -> None:
    assets = {a.key.to_user_string(): a for a in build_export_assets(load_catalog())}
    resources = {"warehouse": deployment.warehouse(), "sources": SqlSources()}
    daily = dg.materialize(
        [assets["flights"], assets["weather"]],
        instance=deployment.instance,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": FIRST_DAY,
            "dagster/asset_partition_range_end": LAST_DAY,
        },
    )
    dimensions = dg.materialize(
        [assets[n] for n in ("airlines", "airports", "planes")],
        instance=deployment.instance,
        resources=resources,
    )
    assert daily.success and dimensions.success
    # The evaluation assets are another engineer's work in progress: their tables are filled
    # directly, in the registry's declared shape.
    warehouse = deployment.warehouse()
    evaluated_at = datetime(2013, 1, 8, 12, tzinfo=UTC).replace(tzinfo=None)
    warehouse.replace(
        "evaluation_results",
        pd.DataFrame(
            {
                "evaluation_key": [f"delay-model:model@{COMMIT_A[:8]}", f"delay-model:model@{COMMIT_B[:8]}"],
                "suite": ["delay-model"] * 2,
                "commits": [f"model@{COMMIT_A}", f"model@{COMMIT_B}"],
                "status": ["passed", "failed"],
                "message": ["better than baseline", "auc fell by 0.04"],
                "baseline_key": [None, f"delay-model:model@{COMMIT_A[:8]}"],
                "split_at": pd.to_datetime(["2013-01-06"] * 2),
                "data_through": [LAST_DAY] * 2,
                "data_version": ["v1", "v1"],
                "train_rows": [4000, 4000],
                "test_rows": [1500, 1500],
                "seconds": [3.5, 4.0],
                "evaluated_at": [evaluated_at] * 2,
                "run_id": ["run-a", "run-b"],
            }
        ),
    )
    warehouse.replace(
        "evaluation_metrics",
        pd.DataFrame(
            {
                "evaluation_key": [f"delay-model:model@{COMMIT_A[:8]}"] * 2
                + [f"delay-model:model@{COMMIT_B[:8]}"],
                "metric": ["auc", "accuracy", "auc"],
                "value": [0.81, 0.77, 0.77],
                "baseline_value": [0.75, 0.7, 0.81],
                "ci_low": [0.79, 0.75, 0.75],
                "ci_high": [0.83, 0.79, 0.79],
            }
        ),
    )


def start_api(
    deployment: Deployment, log_dir: Path, extra_env: dict | None = None, *, wait: bool = True
) -> Service:
    port = free_port()
    env = {
        **os.environ,
        settings.STATE_DIR_ENV: str(deployment.state_dir),
        settings.WAREHOUSE_URL_ENV: deployment.warehouse_url,
        "DAGSTER_HOME": str(deployment.dagster_home),
        TOKENS_ENV: f"tester:{hash_token(TOKEN)}",
        TOKENS_FILE_ENV: str(deployment.state_dir / "api_tokens"),
        settings.SUITES_FILE_ENV: str(deployment.state_dir / "suites.yaml"),
        "COLLAB_API_CHUNK_ROWS": str(CHUNK_ROWS),
        **(extra_env or {}),
    }
    script = Path(sys.executable).parent / "collab-data-api"
    service = Service(
        f"data-api-{deployment.backend}-{port}", [str(script), "serve", "--port", str(port)], env, log_dir
    )
    service.url = f"http://127.0.0.1:{port}"
    if wait:
        wait_until_healthy(service)
    return service


def wait_until_healthy(service: Service) -> None:
    try:
        wait_for(
            "the data API's /health", lambda: _healthy(service.url), timeout=90, interval=0.2, service=service
        )
    except BaseException:
        service.stop()
        raise


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def postgres_warehouse_url(postgres_server_url: str) -> Iterator[str]:
    """One PostgreSQL database for the session's tests (filling one per test would cost minutes)."""
    with new_postgres_database(postgres_server_url, "collab_api") as url:
        yield url


def _api(tmp_path_factory, source_template, backend: str, url: str | None) -> Iterator[Api]:
    root = tmp_path_factory.mktemp(f"api-{backend}")
    deployment = make_deployment(root, source_template, backend, url)
    # The server imports the whole project while the warehouse fills: the two overlap.
    service = start_api(deployment, root, wait=False)
    try:
        fill(deployment)
        wait_until_healthy(service)
        yield Api(service.url, deployment, service)
    finally:
        service.stop()
        deployment.instance.dispose()
        dispose_engines(deployment.warehouse_url)


@pytest.fixture(scope="session")
def sqlite_api(tmp_path_factory, source_template) -> Iterator[Api]:
    yield from _api(tmp_path_factory, source_template, "sqlite", None)


@pytest.fixture(scope="session")
def postgres_api(tmp_path_factory, source_template, postgres_warehouse_url) -> Iterator[Api]:
    yield from _api(tmp_path_factory, source_template, "postgresql", postgres_warehouse_url)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def api(request) -> Api:
    return request.getfixturevalue(f"{request.param}_api")
