"""Upload-to-queryable latency and ingestion throughput, against plain pandas.

A real SFTP server (asyncssh) on loopback receives a CSV of weather observations from a real
client (paramiko). The project's upload sensor and ingestion asset then validate and load it;
the clock stops when the rows can be counted in the warehouse. The baseline reads the same
file with pandas and writes it with `to_sql` into a SQLite database, nothing else.

    .venv/bin/python benchmarks/intake_ingestion.py [rows]
"""

import asyncio
import io
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncssh
import dagster as dg
import numpy as np
import pandas as pd
import paramiko
import sqlalchemy as sa
import yaml

from collab_pipelines.demo.paths import DEMO_CONFIG
from collab_pipelines.intake.assets import build_uploads_asset
from collab_pipelines.intake.landing import LocalLandingZone
from collab_pipelines.intake.partitions import upload_partitions
from collab_pipelines.intake.sensors import build_upload_sensor
from collab_pipelines.intake.sftp_accounts import load_accounts, password_hash
from collab_pipelines.intake.sftp_server import ServerConfig, start_server
from collab_pipelines.intake.upload_types import load_uploads
from collab_pipelines.warehouse.resources import Warehouse

GOAL_RATIO = 1.3  # issue 14


def observations(rows: int) -> bytes:
    hours = pd.date_range("2000-01-01", periods=rows // 3 + 1, freq="h")
    frame = pd.DataFrame(
        {
            "origin": np.tile(["EWR", "JFK", "LGA"], len(hours))[:rows],
            "observed_at": np.repeat(hours, 3)[:rows].strftime("%Y-%m-%d %H:%M"),
        }
    )
    generator = np.random.default_rng(13)
    for column, low, high in (
        ("temp", 10, 90),
        ("dewp", 0, 70),
        ("humid", 20, 100),
        ("wind_speed", 0, 30),
        ("precip", 0, 1),
        ("pressure", 990, 1040),
        ("visib", 0, 10),
    ):
        frame[column] = generator.uniform(low, high, rows).round(2)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def main() -> int:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 150_000
    data = observations(rows)
    uploads = load_uploads(DEMO_CONFIG / "uploads.yaml")
    # The instance is made before the clock starts: a deployment has one already.
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        work = Path(tmp)
        (work / "users.yaml").write_text(
            yaml.safe_dump({"users": {"meteo": {"password_hash": password_hash("pw")}}})
        )
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        config = ServerConfig(root=work / "landing", accounts=load_accounts(work / "users.yaml"))
        acceptor = asyncio.run_coroutine_threadsafe(
            start_server(config, work / "host_key", "127.0.0.1", 0), loop
        ).result(30)
        host_key = asyncssh.read_private_key(str(work / "host_key")).export_public_key().decode().strip()
        (work / "known_hosts").write_text(f"[127.0.0.1]:{acceptor.get_port()} {host_key}\n")

        client = paramiko.SSHClient()
        client.load_host_keys(str(work / "known_hosts"))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            "127.0.0.1",
            port=acceptor.get_port(),
            username="meteo",
            password="pw",
            allow_agent=False,
            look_for_keys=False,
        )
        sftp = client.open_sftp()
        started = time.perf_counter()
        with sftp.open("inbox/observations.csv", "wb") as handle:
            handle.set_pipelined(True)
            handle.write(data)
        with sftp.open("inbox/observations.csv.done", "wb"):
            pass
        uploaded = time.perf_counter()

        landing = LocalLandingZone(root=str(work / "landing"))
        warehouse = Warehouse(url=f"sqlite:///{work / 'warehouse.db'}")
        asset = build_uploads_asset(uploads.upload_types["weather_observations"])
        result = build_upload_sensor(uploads)(
            dg.build_sensor_context(instance=instance, resources={"landing_zone": landing})
        )
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        ingest_started = time.perf_counter()
        dg.materialize(
            [asset],
            partition_key=result.run_requests[0].partition_key,
            instance=instance,
            resources={"landing_zone": landing, "warehouse": warehouse},
        )
        ingested = time.perf_counter()
        assert warehouse.count("weather_observations_uploads") == rows
        queryable = time.perf_counter()

        # Dagster's floor: the same kind of run of an asset that does nothing.
        @dg.asset(name="floor_probe", partitions_def=upload_partitions("weather_observations"))
        def floor_probe() -> None:
            return None

        floor_started = time.perf_counter()
        dg.materialize([floor_probe], partition_key=result.run_requests[0].partition_key, instance=instance)
        floor = time.perf_counter() - floor_started
        client.close()
        acceptor.close()

        plain_started = time.perf_counter()
        frame = pd.read_csv(io.BytesIO(data))
        with sa.create_engine(f"sqlite:///{work / 'plain.db'}").begin() as connection:
            frame.to_sql("observations", connection, index=False, chunksize=20_000)
        plain = time.perf_counter() - plain_started

    ingestion = ingested - ingest_started
    print(f"intake of one CSV upload, {rows:,} rows, {len(data) / 1e6:.1f} MB")
    print(f"  SFTP upload (paramiko -> asyncssh):       {uploaded - started:7.2f} s")
    print(f"  upload complete -> rows queryable:         {queryable - uploaded:7.2f} s")
    print(
        f"  ingestion step (validate + load + move):   {ingestion:7.2f} s   {rows / ingestion:10,.0f} rows/s"
    )
    print(f"  plain pandas read_csv + to_sql:            {plain:7.2f} s   {rows / plain:10,.0f} rows/s")
    print(f"  ratio (ingestion / plain pandas):          {ingestion / plain:7.2f}")
    print(f"  Dagster's floor (a run that does nothing): {floor:7.2f} s")
    print(f"  ratio (ingestion - floor) / plain pandas:  {(ingestion - floor) / plain:7.2f}")
    print(f"  ratio (upload complete -> queryable / plain pandas): {(queryable - uploaded) / plain:5.2f}")
    ratio = (queryable - uploaded) / plain
    print(
        f"  goal: upload complete -> queryable <= {GOAL_RATIO} x plain pandas: {'met' if ratio <= GOAL_RATIO else 'NOT met'}"
    )
    print("  (a deployed sensor adds up to its 15 s interval before the tick that takes the file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
