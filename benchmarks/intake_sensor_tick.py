"""The upload sensor's tick with 10,000 processed uploads in its history (goal: under 1 s).

The same tick is timed on an empty history, so the figure that matters is the ratio: a tick
must cost what its inboxes hold, not what was ever uploaded. History here is 10,000 files in
an uploader's processed/ folder and 10,000 dynamic partitions in the Dagster instance.

    .venv/bin/python benchmarks/intake_sensor_tick.py [history]
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from collab_pipelines.demo.paths import DEMO_CONFIG
from collab_pipelines.intake.landing import LocalLandingZone
from collab_pipelines.intake.partitions import upload_partitions
from collab_pipelines.intake.sensors import build_upload_sensor
from collab_pipelines.intake.upload_types import load_uploads

NEW_UPLOADS = 5
GOAL_SECONDS = 1.0


def tick_seconds(history: int) -> tuple[float, float]:
    """(median idle tick, tick that takes NEW_UPLOADS files) with `history` processed uploads."""
    uploads = load_uploads(DEMO_CONFIG / "uploads.yaml")
    sensor = build_upload_sensor(uploads)
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        landing = LocalLandingZone(root=str(Path(tmp) / "landing"))
        processed = Path(tmp) / "landing" / "meteo" / "processed"
        processed.mkdir(parents=True)
        keys = [f"meteo-{n:016x}" for n in range(history)]
        for key in keys:
            (processed / f"{key}__observations.csv").write_bytes(b"origin,observed_at,temp\n")
        if keys:
            instance.add_dynamic_partitions(upload_partitions("weather_observations").name, keys)

        def tick() -> tuple[float, dg.SensorResult]:
            with dg.build_sensor_context(instance=instance, resources={"landing_zone": landing}) as context:
                started = time.perf_counter()
                result = sensor(context)
                return time.perf_counter() - started, result

        tick()  # the landing folders are created on first sight
        idle = statistics.median(tick()[0] for _ in range(5))
        inbox = Path(tmp) / "landing" / "meteo" / "inbox"
        for n in range(NEW_UPLOADS):
            (inbox / f"new-{n}.csv").write_text(f"origin,observed_at,temp\nJFK,2013-01-01 0{n}:00,3\n")
            (inbox / f"new-{n}.csv.done").write_text("")
        busy, result = tick()
        assert len(result.run_requests) == NEW_UPLOADS
    return idle, busy


def main() -> int:
    history = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    empty_idle, empty_busy = tick_seconds(0)
    full_idle, full_busy = tick_seconds(history)
    print(f"upload sensor tick, {history:,} processed uploads in history vs none")
    print(
        f"  idle tick (nothing new):       {full_idle * 1000:8.1f} ms   empty history {empty_idle * 1000:8.1f} ms"
    )
    print(
        f"  tick taking {NEW_UPLOADS} new uploads:     {full_busy * 1000:8.1f} ms   empty history {empty_busy * 1000:8.1f} ms"
    )
    print(f"  ratio (history / none), busy tick:  {full_busy / empty_busy:6.2f}")
    verdict = "met" if max(full_idle, full_busy) < GOAL_SECONDS else "NOT met"
    print(f"  goal: every tick under {GOAL_SECONDS:.0f} s at {history:,} history: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
