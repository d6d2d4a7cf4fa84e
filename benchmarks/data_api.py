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

4. The server's memory: its resident size once started, then its peak (VmHWM, reset before
   each answer) while it sends the full year in each format, against the year's rows as a
   pandas DataFrame (what a service that builds the answer in memory would hold at least).

Goals (issue 14): a one-day read at most 1.3 times the indexed raw read, and faster than
datasette in every format; (issue 26) the server's peak during a full-year answer at most
twice the year's DataFrame. The last lines say which are met.

The warehouse is filled by materializing the project's own `flights` export for 2013.

    .venv/bin/python benchmarks/data_api.py                  # all of it, about 6 minutes
    .venv/bin/python benchmarks/data_api.py --memory-only    # the server's memory alone
"""

import argparse
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
RAW_GOAL, DATASETTE_GOAL, MEMORY_GOAL = 1.30, 1.00, 2.0


def timed(runs: int, requests: dict[str, Callable[[], int]]) -> dict[str, dict]:
    """Each request `runs` times, in rounds that take one of each (in a turning order).

    On a shared machine the load drifts over a run; interleaved, every way of reading the
    rows meets the same load, so their ratios hold even when the absolute times do not.
    """
    for request in requests.values():
        request()  # warm: connections, caches, imports
    names = list(requests)
    times: dict[str, list[float]] = {name: [] for name in names}
    rows: dict[str, int] = {}
    for round_ in range(runs):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            started = time.perf_counter()
            rows[name] = requests[name]()
            times[name].append(time.perf_counter() - started)
    return {name: summary(times[name], rows[name]) for name in names}


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--memory-only", action="store_true", help="measure the server's memory, not the times"
    )
    args = parser.parse_args()
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
        api_port = free_port()
        api = start(
            "data-api",
            [str(BIN / "collab-data-api"), "serve", "--port", str(api_port)],
            env,
            work,
            f"http://127.0.0.1:{api_port}/health",
        )
        started_mb = memory_mb(api.pid)["VmRSS"]
        try:
            verdicts = (
                []
                if args.memory_only
                else against_baselines(engine, env, work, f"http://127.0.0.1:{api_port}")
            )
            verdicts += memory(engine, f"http://127.0.0.1:{api_port}", api.pid, started_mb)
        finally:
            stop(api)
    print(
        "\nratio = the data API's figure / the baseline's (lower is better; < 1 is better than the baseline)."
        f"\ngoals: one day <= {RAW_GOAL:.2f} against the indexed raw read; < {DATASETTE_GOAL:.2f} against "
        f"datasette in every format; the server's peak <= {MEMORY_GOAL:g} times the year's DataFrame."
    )
    for what, ratio, met in verdicts:
        print(f"  {what:<58} {ratio:5.2f}  {'met' if met else 'NOT met'}")
    return 0


def against_baselines(
    engine: sa.Engine, env: dict, work: Path, api_url: str
) -> list[tuple[str, float, bool]]:
    datasette_port = free_port()
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
        return report(engine, api_url, f"http://127.0.0.1:{datasette_port}/warehouse")
    finally:
        stop(datasette)


def memory_mb(pid: int) -> dict[str, float]:
    """The process's resident size now (VmRSS) and its peak (VmHWM), in MB."""
    sizes = {}
    for status_line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = status_line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            sizes[name] = int(value.split()[0]) / 1024
    return sizes


def reset_peak(pid: int) -> bool:
    """Set the process's VmHWM back to its current size (Linux: 5 into clear_refs); False if refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def year_frame_mb(engine: sa.Engine) -> float:
    return pd.read_sql(sa.text("SELECT * FROM flights"), engine).memory_usage(deep=True).sum() / 2**20


def memory(engine: sa.Engine, api_url: str, pid: int, started_mb: float) -> list[tuple[str, float, bool]]:
    """The server's peak while it sends the full year in each format, one format at a time."""
    frame_mb = year_frame_mb(engine)
    client = httpx.Client(timeout=300, headers={"Authorization": f"Bearer {TOKEN}"})
    print(
        f"\nthe data API server: {started_mb:.0f} MB resident once started, before any request; "
        f"the year's rows as a DataFrame: {frame_mb:.0f} MB"
    )
    verdicts = []
    for fmt in FORMATS:
        separate = reset_peak(pid)
        before = memory_mb(pid)["VmRSS"]
        with client.stream(
            "GET", f"{api_url}/v1/datasets/flights/rows", params={"format": fmt, "limit": 1_000_000}
        ) as response:
            assert response.status_code == 200, response.read()
            size = sum(len(piece) for piece in response.iter_raw())
        peak = memory_mb(pid)["VmHWM"]
        print(
            f"  full year as {fmt:<8} {size / 2**20:4.0f} MB sent; the server's peak {peak:4.0f} MB, "
            f"{peak - before:+.0f} MB over its {before:.0f} MB before this answer"
            + ("" if separate else " (VmHWM could not be reset: the peak since start)"),
            flush=True,
        )
        ratio = peak / frame_mb
        verdicts.append(
            (f"full year, {fmt}, server's peak against the DataFrame", ratio, ratio <= MEMORY_GOAL)
        )
    return verdicts


def report(engine: sa.Engine, api_url: str, datasette_url: str) -> list[tuple[str, float, bool]]:
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
        # datasette reads a leading underscore as its own option, so the filter is spelled out.
        datasette_params = {"_partition__exact": DAY} if params else {}
        figures_by = timed(
            runs,
            {
                "pandas": through_pandas(where, sql_params),
                "sqlite3": through_sqlite3(where, sql_params),
                **{f"datasette {fmt}": through_datasette(datasette_params, fmt) for fmt in ("json", "csv")},
                **{fmt: through_api(params, fmt) for fmt in FORMATS},
            },
        )
        pandas_figures = figures_by["pandas"]
        print(line("SQLAlchemy + pandas (in-process)", pandas_figures), flush=True)
        print(
            line(
                "bare sqlite3 cursor (in-process)", figures_by["sqlite3"], pandas_figures, "indexed raw read"
            )
        )
        datasette_figures = {fmt: figures_by[f"datasette {fmt}"] for fmt in ("json", "csv")}
        for fmt in ("json", "csv"):
            print(line(f"datasette {fmt}", datasette_figures[fmt]), flush=True)
        for fmt in FORMATS:
            figures = figures_by[fmt]
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
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
