"""The hand-over to the candidate's process: Dagster Pipes against the harness's own message pipe.

Issue 21 asked to measure Pipes against today's process start before adopting it. Both sides
run the same child, in the same kind of Dagster run (one asset materialized in process): a
Python process that imports pandas and scikit-learn (what every candidate imports), then
reports one value and ends.
- Pipes: `PipesSubprocessClient` starts it; the child opens `dagster_pipes` (context from an
  environment variable, messages through a temporary file the client polls) and reports an
  asset materialization with the value.
- The harness's way: `subprocess.Popen` with a pipe passed as a file descriptor; the child
  writes one JSON line on it, as candidate_script.py does, and the asset reads it.

Prints the median run time of each over repetitions, run alternately, the ratio and the goal:
Pipes at most 1.1 times the pipe, so that adopting it would cost the hand-over nothing worth
counting (docs/evaluation.md says why it is not adopted all the same).

    .venv/bin/python benchmarks/pipes_handover.py [--repeat 15]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import dagster as dg
from _goals import judged

GOAL_RATIO = 1.1

IMPORTS = "import pandas, sklearn.linear_model\n"
PIPES_CHILD = IMPORTS + textwrap.dedent("""
    from dagster_pipes import open_dagster_pipes
    with open_dagster_pipes() as pipes:
        pipes.report_asset_materialization(metadata={"value": 1})
""")
PIPE_CHILD = IMPORTS + textwrap.dedent("""
    import json, os, sys
    with os.fdopen(int(sys.argv[1]), "wb", buffering=0) as messages:
        messages.write(json.dumps({"value": 1}).encode() + b"\\n")
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pipes-") as tmp:
        work = Path(tmp)
        (work / "pipes_child.py").write_text(PIPES_CHILD)
        (work / "pipe_child.py").write_text(PIPE_CHILD)

        @dg.asset(name="through_pipes")
        def through_pipes(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient):
            return pipes.run(
                command=[sys.executable, str(work / "pipes_child.py")], context=context
            ).get_results()

        @dg.asset(name="through_a_pipe")
        def through_a_pipe() -> dg.MaterializeResult:
            reading, writing = os.pipe()
            child = subprocess.Popen(
                [sys.executable, str(work / "pipe_child.py"), str(writing)], pass_fds=(writing,)
            )
            os.close(writing)
            with os.fdopen(reading, "rb") as messages:
                value = json.loads(messages.readline())["value"]
            child.wait()
            return dg.MaterializeResult(metadata={"value": value})

        resources = {"pipes": dg.PipesSubprocessClient()}
        times: dict[str, list[float]] = {"pipes": [], "pipe": []}
        with dg.instance_for_test() as instance:
            for asset in (through_pipes, through_a_pipe):  # warm: imports, the instance's tables
                dg.materialize([asset], instance=instance, resources=resources)
            for _ in range(args.repeat):
                for name, asset in (("pipes", through_pipes), ("pipe", through_a_pipe)):
                    started = time.perf_counter()
                    result = dg.materialize([asset], instance=instance, resources=resources)
                    times[name].append(time.perf_counter() - started)
                    [materialization] = result.asset_materializations_for_node(asset.key.path[-1])
                    assert materialization.metadata["value"].value == 1
    pipes, pipe = statistics.median(times["pipes"]), statistics.median(times["pipe"])
    paired = statistics.median(a / b for a, b in zip(times["pipes"], times["pipe"], strict=True))
    print(f"Dagster Pipes (PipesSubprocessClient), median of {args.repeat}: {pipes * 1000:7.0f} ms")
    print(f"the harness's message pipe, same child and run:   {pipe * 1000:7.0f} ms")
    print(
        f"ratio pipes/pipe: {pipes / pipe:.2f} (median of paired ratios {paired:.2f}; "
        f"{judged(paired, at_most=GOAL_RATIO)})"
    )


if __name__ == "__main__":
    main()
