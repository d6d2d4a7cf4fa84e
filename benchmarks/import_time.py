"""How long a data scientist's `import collab_pipelines.data_api.client` takes, beside `import pandas`.

Each import runs in a fresh interpreter (nothing cached in the process; the OS file cache is
warm after the first run, as on a laptop that imported it before), several times; the
median is printed, with the ratio and whether the client pulled in Dagster or scikit-learn.
Goal (issue 11): under 1 s, and neither heavy package loaded.

    .venv/bin/python benchmarks/import_time.py [runs]
"""

import json
import statistics
import subprocess
import sys
import time

from _goals import judged, judged_flag

CLIENT = "collab_pipelines.data_api.client"
HEAVY = ("dagster", "dagstermill", "sklearn")
GOAL_SECONDS = 1.0


def import_seconds(module: str) -> tuple[float, set[str]]:
    """Wall time of a fresh interpreter importing `module`, minus one importing nothing."""
    probe = (
        "import time, sys, json\n"
        "started = time.perf_counter()\n"
        f"import {module}\n"
        "elapsed = time.perf_counter() - started\n"
        "print(json.dumps([elapsed, sorted({m.split('.')[0] for m in sys.modules})]))\n"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    elapsed, loaded = json.loads(output.strip().splitlines()[-1])
    return elapsed, set(loaded)


def median_seconds(module: str, runs: int) -> tuple[float, set[str]]:
    import_seconds(module)  # warm the file cache
    times, loaded = [], set()
    for _ in range(runs):
        elapsed, loaded = import_seconds(module)
        times.append(elapsed)
    return statistics.median(times), loaded


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 7
    started = time.perf_counter()
    client, loaded = median_seconds(CLIENT, runs)
    pandas, _ = median_seconds("pandas", runs)
    heavy = sorted(set(HEAVY) & loaded)
    print(f"import time, median of {runs} fresh interpreters each")
    print(f"  import {CLIENT:<40} {client * 1000:7.0f} ms   {judged(client, below=GOAL_SECONDS, unit=' s')}")
    print(f"  import {'pandas':<40} {pandas * 1000:7.0f} ms   (baseline)")
    print(f"  ratio client / pandas {client / pandas:5.2f}")
    print(
        f"  heavy packages the client loaded: {', '.join(heavy) or 'none'} "
        f"({judged_flag(not heavy, 'none of ' + ', '.join(HEAVY))})"
    )
    print(f"  ({time.perf_counter() - started:.1f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
