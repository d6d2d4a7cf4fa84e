"""The data API against two baselines, on a year of flights in a SQLite warehouse.

1. Through `collab-data-api` (uvicorn on loopback), in each format: a one-day partition and
   the full-year table, each request timed to the last byte (throughput, p50, p99).
2. The same rows read in-process with plain SQLAlchemy + pandas (`pd.read_sql`): the floor
   of any HTTP service, so the ratio is the cost of HTTP, auth, streaming and encoding. It
   reads the same table, so it uses the same index on `_partition` the project's export
   creates (`warehouse/tables.py`); the query plan is printed to show it. For information,
   the same query on a bare sqlite3 cursor (rows as tuples, no frame) is printed beside it:
   what the database alone takes.
3. datasette serving the same SQLite file: the same rows as JSON and CSV. Every API format is
   set against datasette's (CSV against CSV, the others against its JSON).

Goals (issue 14): a one-day read at most 1.3 times the indexed raw read, and faster than
datasette in every format; the last lines say which are met.

The warehouse is filled by materializing the project's own `flights` export for 2013.

    .venv/bin/python benchmarks/data_api.py
"""

import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import sqlalchemy as sa

from collab_pipelines import settings
from collab_pipelines.data_api.auth import hash_token
from collab_pipelines.demo.paths import DEMO_CONFIG
from collab_pipelines.demo.source import ProductDatabase
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse

DAY = "2013-06-14"
FORMATS = ("json", "ndjson", "csv", "parquet")
TOKEN = "benchmark-token"
BIN = Path(sys.executable).parent
# Repetitions: enough for a p99 of the small request, few for the year (seconds each).
DAY_RUNS, YEAR_RUNS = 40, 3
RAW_GOAL, DATASETTE_GOAL = 1.30, 1.00


def timed(runs: int, request: Callable[[], int]) -> tuple[list[float], int]:
    request()  # warm: connections, caches, imports
    times, rows = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        rows = request()
        times.append(time.perf_counter() - started)
    return times, rows


def summary(times: list[float], rows: int) -> dict:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50": statistics.median(ordered),
        "p99": p99,
        "rows_per_s": rows / statistics.mean(ordered),
        "rows": rows,
    }


def line(label: str, figures: dict, baseline: dict | None = None, baseline_name: str = "") -> str:
    text = (
        f"  {label:<34} {figures['rows']:>7} rows  {figures['rows_per_s']:>10,.0f} rows/s  "
        f"p50 {figures['p50'] * 1000:8.1f} ms  p99 {figures['p99'] * 1000:8.1f} ms"
    )
    if baseline:
        text += f"   ratio to {baseline_name} {figures['p50'] / baseline['p50']:5.2f}"
    return text


def fill(work: Path) -> str:
    os.environ["COLLAB_STATE_DIR"] = str(work)
    os.environ.pop("COLLAB_SOURCE_URL", None)
    ProductDatabase(sa.create_engine(f"sqlite:///{work / 'product.db'}")).initialize(date(2014, 1, 1))
    url = f"sqlite:///{work / 'warehouse.db'}"
    flights = next(a for a in build_export_assets(load_catalog()) if a.key.to_user_string() == "flights")
    (work / "dagster").mkdir()
    (work / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = dg.DagsterInstance.from_config(str(work / "dagster"))
    result = dg.materialize(
        [flights],
        instance=instance,
        resources={"warehouse": Warehouse(url=url), "sources": SqlSources()},
        tags={
            "dagster/asset_partition_range_start": "2013-01-01",
            "dagster/asset_partition_range_end": "2013-12-31",
        },
    )
    assert result.success
    instance.dispose()
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(name: str, args: list[str], env: dict, work: Path, health: str) -> subprocess.Popen:
    log = (work / f"{name}.log").open("wb")
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _answers(health):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"{name} did not start:\n{(work / f'{name}.log').read_text()[-3000:]}")
        time.sleep(0.3)
    return process


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    # The demo's catalog declares flights (a team's own folder would declare its tables).
    os.environ.setdefault(settings.CONFIG_DIR_ENV, str(DEMO_CONFIG))
    kept = os.environ.get("COLLAB_BENCH_WORK")  # a folder to keep the filled warehouse in, between runs
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(kept or tmp)
        if (work / "warehouse.db").exists():
            url = f"sqlite:///{work / 'warehouse.db'}"
        else:
            print("filling a SQLite warehouse with 2013's flights through the export asset ...", flush=True)
            work.mkdir(parents=True, exist_ok=True)
            url = fill(work)
        engine = sa.create_engine(url)
        env = {
            **os.environ,
            "COLLAB_WAREHOUSE_URL": url,
            "DAGSTER_HOME": str(work / "dagster"),
            "COLLAB_API_TOKENS": f"bench:{hash_token(TOKEN)}",
        }
        api_port, datasette_port = free_port(), free_port()
        api = start(
            "data-api",
            [str(BIN / "collab-data-api"), "serve", "--port", str(api_port)],
            env,
            work,
            f"http://127.0.0.1:{api_port}/health",
        )
        datasette = start(
            "datasette",
            [
                str(BIN / "datasette"),
                "serve",
                str(work / "warehouse.db"),
                "-h",
                "127.0.0.1",
                "-p",
                str(datasette_port),
                # Whole-table JSON in one response, no time limit, no facet suggestions: datasette at its fastest.
                "--setting",
                "max_returned_rows",
                "400000",
                "--setting",
                "sql_time_limit_ms",
                "120000",
                "--setting",
                "suggest_facets",
                "off",
            ],
            env,
            work,
            f"http://127.0.0.1:{datasette_port}/-/versions.json",
        )
        try:
            report(engine, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{datasette_port}/warehouse")
            # Streaming keeps the server's memory to a few chunks, whatever the size of the answer.
            print(
                f"data API server's peak memory (VmHWM) after every request above: {peak_mb(api.pid):.0f} MB; "
                f"the year's rows as a DataFrame: {year_frame_mb(engine):.0f} MB"
            )
        finally:
            stop(api)
            stop(datasette)
    return 0


def peak_mb(pid: int) -> float:
    for status_line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if status_line.startswith("VmHWM:"):
            return int(status_line.split()[1]) / 1024
    return float("nan")


def year_frame_mb(engine: sa.Engine) -> float:
    return pd.read_sql(sa.text("SELECT * FROM flights"), engine).memory_usage(deep=True).sum() / 2**20


def report(engine: sa.Engine, api_url: str, datasette_url: str) -> None:
    client = httpx.Client(timeout=300, headers={"Authorization": f"Bearer {TOKEN}"})

    def through_api(params: dict, fmt: str) -> Callable[[], int]:
        def request() -> int:
            with client.stream(
                "GET",
                f"{api_url}/v1/datasets/flights/rows",
                params={**params, "format": fmt, "limit": 1_000_000},
            ) as response:
                assert response.status_code == 200, response.read()
                size = sum(len(piece) for piece in response.iter_raw())
            assert size > 0
            return expected_rows[params.get("partition", "year")]

        return request

    def through_pandas(where: str, params: dict) -> Callable[[], int]:
        statement = sa.text(f"SELECT * FROM flights {where} ORDER BY id")
        return lambda: len(pd.read_sql(statement, engine, params=params))

    def through_sqlite3(where: str, params: dict) -> Callable[[], int]:
        connection = sqlite3.connect(f"file:{engine.url.database}?mode=ro", uri=True, check_same_thread=False)
        sql = f"SELECT * FROM flights {where.replace(':d', '?')} ORDER BY id"
        return lambda: len(connection.execute(sql, tuple(params.values())).fetchall())

    def through_datasette(params: dict, fmt: str) -> Callable[[], int]:
        suffix = {"json": ".json", "csv": ".csv"}[fmt]
        extra = {"_shape": "array", "_size": "max"} if fmt == "json" else {"_stream": "on", "_size": "max"}

        def request() -> int:
            with client.stream(
                "GET", f"{datasette_url}/flights{suffix}", params={**params, **extra}
            ) as response:
                assert response.status_code == 200, response.read()
                size = sum(len(piece) for piece in response.iter_raw())
            assert size > 0
            return expected_rows[params.get("_partition__exact", "year")]

        return request

    with engine.connect() as connection:
        plan = connection.execute(
            sa.text("EXPLAIN QUERY PLAN SELECT * FROM flights WHERE _partition = :d ORDER BY id"), {"d": DAY}
        ).all()
        print("raw read's query plan: " + "; ".join(str(row[-1]) for row in plan))
        if not any("INDEX" in str(row[-1]) for row in plan):
            raise SystemExit(
                "the warehouse has no index on flights._partition: it predates the indexed tables; "
                "delete $COLLAB_BENCH_WORK and run again"
            )
        expected_rows = {
            DAY: connection.execute(
                sa.text("SELECT count(*) FROM flights WHERE _partition = :d"), {"d": DAY}
            ).scalar(),
            "year": connection.execute(sa.text("SELECT count(*) FROM flights")).scalar(),
        }

    verdicts: list[tuple[str, float, bool]] = []
    for label, params, where, runs in (
        (f"one day ({DAY})", {"partition": DAY}, "WHERE _partition = :d", DAY_RUNS),
        ("full year (2013)", {}, "", YEAR_RUNS),
    ):
        print(f"\n{label}: {expected_rows[params.get('partition', 'year')]} rows of flights, 23 columns")
        sql_params = {"d": DAY} if params else {}
        pandas_figures = summary(*timed(runs, through_pandas(where, sql_params)))
        print(line("SQLAlchemy + pandas (in-process)", pandas_figures), flush=True)
        cursor_figures = summary(*timed(runs, through_sqlite3(where, sql_params)))
        print(line("bare sqlite3 cursor (in-process)", cursor_figures, pandas_figures, "indexed raw read"))
        # datasette reads a leading underscore as its own option, so the filter is spelled out.
        datasette_params = {"_partition__exact": DAY} if params else {}
        datasette_figures = {
            fmt: summary(*timed(runs, through_datasette(datasette_params, fmt))) for fmt in ("json", "csv")
        }
        for fmt in ("json", "csv"):
            print(line(f"datasette {fmt}", datasette_figures[fmt]), flush=True)
        for fmt in FORMATS:
            figures = summary(*timed(runs, through_api(params, fmt)))
            print(line(f"data API {fmt}", figures, pandas_figures, "indexed raw read"), flush=True)
            versus = "csv" if fmt == "csv" else "json"
            to_datasette = figures["p50"] / datasette_figures[versus]["p50"]
            print(
                f"  {'':<34} {'':>7}       {'':>10}         {'':>8}        {'':>8}     "
                f"   ratio to datasette {versus} {to_datasette:5.2f}"
            )
            span = label.split(" (")[0]
            if params:
                to_raw = figures["p50"] / pandas_figures["p50"]
                verdicts.append((f"{span}, {fmt}, against the indexed raw read", to_raw, to_raw <= RAW_GOAL))
            verdicts.append(
                (f"{span}, {fmt}, against datasette {versus}", to_datasette, to_datasette < DATASETTE_GOAL)
            )
    print(
        "\nratio = the data API's p50 / the baseline's p50 (lower is better; < 1 is faster)."
        f"\ngoals: one day <= {RAW_GOAL:.2f} against the indexed raw read; < {DATASETTE_GOAL:.2f} against datasette in "
        "every format."
    )
    for what, ratio, met in verdicts:
        print(f"  {what:<52} {ratio:5.2f}  {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
