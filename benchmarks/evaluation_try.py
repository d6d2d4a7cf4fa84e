"""`collab-eval try`, from the command to its verdict, against a plain script fitting and scoring
the same data on the same machine; and the first try's download of the data.

The project's side is a data scientist's try of the demo model's newest commit as a working tree
with an uncommitted change: the suite, its baseline's result and predictions and the data read
through a real data API server (the data cache warm, every partition revalidated by its ETag),
the commit run in the sandboxed harness, gated against the baseline with the bootstrap. The
plain side is the script of benchmarks/evaluation_commit.py: the same exports read with pandas,
the same features, fit, predict and metrics. Goal: at most 1.3 with a warm cache.

It also times the first try's download: every day of flights (the contract's data) from the
data API into an empty cache, as Parquet.

    .venv/bin/python benchmarks/evaluation_try.py [--through 2014-01-01] [--repeat 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from evaluation_commit import plain, prepare

from collab_pipelines import settings
from collab_pipelines.data_api.auth import TOKENS_ENV, hash_token
from collab_pipelines.data_api.cache import CACHE_ENV, PartitionCache
from collab_pipelines.data_api.client import Client
from collab_pipelines.demo.model_repo import register_suite
from collab_pipelines.evaluation.commit_evaluation import evaluate_key
from collab_pipelines.evaluation.contract import CONTRACT_FILE, parse_contract
from collab_pipelines.evaluation.local_try import load_data
from collab_pipelines.evaluation.pins import pin
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import EvaluationKey
from collab_pipelines.warehouse.resources import Warehouse

GOAL_RATIO = 1.3
SUITE = "delay-model"


def serve(work: Path, token: str) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, TOKENS_ENV: f"bench:{hash_token(token)}", "DAGSTER_HOME": str(work / "dagster")}
    (work / "dagster").mkdir(exist_ok=True)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "collab-data-api"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "api.log", "w"),  # noqa: SIM115 -- lives as long as the server
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"the data API ended: {(work / 'api.log').read_text()[-2000:]}")
        time.sleep(0.2)  # a process starting up announces nothing else to wait on
    raise RuntimeError("the data API did not answer /health within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--through", default="2014-01-01", help="export the days before this one")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    last_day = (date.fromisoformat(args.through) - timedelta(days=1)).isoformat()
    with tempfile.TemporaryDirectory(prefix="bench-try-") as tmp:
        work = Path(tmp)
        print(f"preparing: demo source and exports before {args.through}, the demo model repository ...")
        repository, shas = prepare(work, date.fromisoformat(args.through))
        suites_file = work / "suites.yaml"
        os.environ[settings.SUITES_FILE_ENV] = str(suites_file)
        register_suite(suites_file, repository)
        resources = ModelRepositories()
        baseline = str(EvaluationKey(SUITE, (("model", shas[1]),)))
        evaluate_key(baseline, resources.suites(), resources.repository, Warehouse(), data_through=last_day)
        # The newest commit as a working tree with an uncommitted change (a comment): a new candidate.
        subprocess.run(["git", "checkout", "--quiet", shas[-1]], cwd=repository, check=True)
        features = repository / "features.py"
        features.write_text(features.read_text() + "\n# trying a change\n")

        token = "bench-" + uuid.uuid4().hex
        server, url = serve(work, token)
        try:
            os.environ[CACHE_ENV] = str(work / "cache")
            with Client(url, token) as client:
                suite = resources.suites()[SUITE]
                contract = pin(
                    parse_contract((repository / CONTRACT_FILE).read_text(), "bench"), suite, "bench"
                )
                started = time.perf_counter()
                cache = PartitionCache(client)
                data = load_data(client, contract, "bench", cache, last_day)
                download = time.perf_counter() - started
                fetched = cache.last
                print(
                    f"first try's download: {len(fetched.downloaded)} partitions of {contract.datasets}, "
                    f"{fetched.bytes / 1e6:.1f} MB, {sum(data.rows.values())} rows in {download:.2f} s"
                )
            cli = [str(Path(sys.executable).parent / "collab-eval"), "try", SUITE, str(repository)]
            cli += ["--url", url, "--token", token, "--through", last_day]
            tries, plains = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                done = subprocess.run(cli, capture_output=True, text=True)
                tries.append(time.perf_counter() - started)
                if done.returncode not in (0, 1):
                    raise RuntimeError(f"the try failed ({done.returncode}): {done.stdout}{done.stderr}")
                plains.append(plain(work, repository, shas[-1], str(data.split_at))[0])
            print(done.stdout.strip())
        finally:
            server.terminate()
            server.wait()
        project, baseline_seconds = statistics.median(tries), statistics.median(plains)
        ratio = project / baseline_seconds
        paired = statistics.median(a / b for a, b in zip(tries, plains, strict=True))
        print(f"collab-eval try, command to verdict, warm cache (median of {args.repeat}): {project:7.2f} s")
        print(f"plain script, same training and scoring:                        {baseline_seconds:7.2f} s")
        print(f"ratio: {ratio:.2f} (goal <= {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'NOT met'})")
        print(f"median of the repetitions' own ratios: {paired:.2f}")


if __name__ == "__main__":
    main()
