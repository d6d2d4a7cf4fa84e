"""A parameter sweep that fans out with DynamicOut, for the Celery executor test.

It lives in an importable module because Celery workers rebuild the job from its code pointer:
the test hands `dg.reconstructable(parameter_sweep)` to `execute_job`, and each worker imports
this module to run its step. Every point records the process and the Celery worker that ran
it, so the test can tell where each step executed.
"""

import os
import socket
import time

import celery
import dagster as dg

from collab_pipelines.executors import collab_executor


class SweepConfig(dg.Config):
    points: int = 6


class PointConfig(dg.Config):
    # Long enough that one worker cannot drain the queue before the other takes a task.
    seconds: float = 1.5


def where_am_i() -> dict:
    # A proxy, never None itself: it is falsy outside a task.
    task = celery.current_task
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        # None outside a Celery worker (the multiprocess default).
        "worker": task.request.hostname if task else None,
    }


@dg.op(out=dg.DynamicOut(int))
def sweep_points(config: SweepConfig):
    for point in range(config.points):
        yield dg.DynamicOutput(point, mapping_key=f"point_{point}")


@dg.op
def evaluate_point(config: PointConfig, point: int) -> dg.Output:
    time.sleep(config.seconds)
    place = where_am_i()
    return dg.Output(
        {"point": point, "score": point * point, **place},
        metadata={"pid": place["pid"], "host": place["host"], "worker": place["worker"] or ""},
    )


@dg.op
def collect_scores(results: list[dict]) -> dict:
    return {"points": len(results), "best": max(r["score"] for r in results)}


@dg.job(executor_def=collab_executor)
def parameter_sweep():
    collect_scores(sweep_points().map(evaluate_point).collect())
