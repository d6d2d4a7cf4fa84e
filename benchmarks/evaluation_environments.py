"""A commit's own environment: built cold by uv, then found warm in the cache.

The project's side is `environments.python_for` on an exported commit that declares its
packages in requirements.txt (a small pure-Python package from the index, and scikit-learn
pinned to the version the project runs, which uv resolves without downloading); the
baseline is the same commit without a declaration, which runs with the project's own
interpreter. Prints the cold build, the median warm lookup, the baseline and the ratio of
warm to baseline, and the goal: a warm lookup under 10 ms, nothing next to the seconds of a
commit's evaluation (benchmarks/evaluation_commit.py), so declaring packages costs a commit
only its first build.

    .venv/bin/python benchmarks/evaluation_environments.py [--repeat 20] [--package pyjokes==0.8.3]
"""

import argparse
import statistics
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from collab_pipelines.evaluation.environments import python_for

GOAL_WARM_SECONDS = 0.010


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--package", default="pyjokes==0.8.3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-environments-") as tmp:
        work = Path(tmp)
        declared, plain = work / "declared", work / "plain"
        declared.mkdir()
        plain.mkdir()
        (declared / "requirements.txt").write_text(
            f"{args.package}\nscikit-learn=={version('scikit-learn')}\n"
        )
        cache = work / "environments"

        started = time.perf_counter()
        python_for(declared, None, cache)
        cold = time.perf_counter() - started

        warm_times, plain_times = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            python_for(declared, None, cache)
            warm_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            python_for(plain, None, cache)
            plain_times.append(time.perf_counter() - started)
        warm, baseline = statistics.median(warm_times), statistics.median(plain_times)
        print(f"requirements.txt: {args.package}, scikit-learn=={version('scikit-learn')}")
        print(f"cold environment (uv venv + uv pip install): {cold:8.3f} s")
        print(f"warm environment (cache hit, median of {args.repeat}): {warm * 1000:8.2f} ms")
        print(f"no declaration (project interpreter):        {baseline * 1000:8.2f} ms")
        print(f"ratio warm / no declaration: {warm / baseline:.1f}; cold / warm: {cold / warm:.0f}")
        verdict = "met" if warm < GOAL_WARM_SECONDS else "NOT met"
        print(f"goal: a warm lookup under {GOAL_WARM_SECONDS * 1000:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
