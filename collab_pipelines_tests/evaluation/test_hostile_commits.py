"""Hostile commits: each a real commit in a real git repository, judged by the real harness.

Every attack fails or is refused, the evaluation says what the commit tried, the verdict is
never "passed", and nothing outside the candidate's scratch space changes: the warehouse's
exports, the data API's tokens file, the environments cache, the landing zone and the
project's own environment are fingerprinted before and after.

An attack that succeeds raises "LEAKED ..." itself. The same commits run once more in a suite
that sets `unsandboxed: true`, where the attacks that read or reach must succeed: that is
what shows each check here can fail.
"""

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collab_pipelines import settings
from collab_pipelines.evaluation import sandbox
from collab_pipelines.evaluation.candidate_process import EvaluationFailed
from collab_pipelines.evaluation.commit_evaluation import evaluate_key
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import EvaluationKey
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.data_api import conftest as data_api_fixtures
from collab_pipelines_tests.e2e.processes import Service, free_port, wait_for
from collab_pipelines_tests.evaluation.test_evaluation import CONTRACT, GOOD, MODEL

# Its module-scoped services are built once, on one xdist worker (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("hostile_commits")

# A real data API server to reach for (session-scoped, shared with the data API's tests).
sqlite_api = data_api_fixtures.sqlite_api
SECRET = f"hostile-test-secret-{uuid.uuid4().hex}"
LIMITS = {"seconds": 20, "memory_mb": 3072, "processes": 32, "scratch_mb": 64}
PINNED = {
    "data": {
        "dataset": "flights",
        "time_column": "sched_dep_at",
        "row_id": "id",
        "target": {"column": "dep_delay", "above": 15},
        "withheld": ["dep_time", "arr_time", "arr_delay", "air_time"],
    },
    "evaluation": {"metrics": ["roc_auc", "accuracy"], "test_days": 2},
    "gates": {"roc_auc": {"min": 0.55, "max_drop": 0.01}},
}
QUICK = {**LIMITS, "seconds": 5}
# A model whose attack runs when it is imported: `attack()` returns what it achieved, and an
# achievement is raised as LEAKED, so the verdict's message says it either way.
ATTACKING = (
    """
import os, socket, sys, glob
{attack}
achieved = attack()
if achieved:
    raise RuntimeError("LEAKED " + str(achieved))
"""
    + MODEL
)


def attack_model(body: str, **values) -> str:
    return ATTACKING.replace("{attack}", body.format(**values))


READ_PROC = """
def attack():
    found = []
    for path in glob.glob("/proc/*/environ"):
        try:
            if {secret!r}.encode() in open(path, "rb").read():
                found.append(path)
        except OSError:
            pass
    if found:
        return f"the secret from {{found}}"
    raise LookupError(f"no process's environment holds the secret; {{len(glob.glob('/proc/*/environ'))}} processes visible")
"""
CONNECT = """
def attack():
    reached, refused = [], []
    for host, port in {services!r}:
        try:
            socket.create_connection((host, port), timeout=3).close()
            reached.append(f"{{host}}:{{port}}")
        except OSError as error:
            refused.append(f"{{host}}:{{port}} ({{error}})")
    if reached:
        return f"connected to {{reached}}"
    raise ConnectionError(f"no service reachable: {{refused}}")
"""
READ_FILES = """
def attack():
    read, failed = [], []
    for path in {paths!r}:
        try:
            read.append((path, len(open(path, "rb").read())))
        except OSError as error:
            failed.append(f"{{type(error).__name__}}: {{path}}")
    if read:
        return f"read {{read}}"
    raise PermissionError(f"nothing readable: {{failed}}")
"""
WRITE_FILES = """
def attack():
    written, failed = [], []
    for path in {paths!r}:
        try:
            with open(path, "w") as file:
                file.write("poisoned")
            written.append(path)
        except OSError as error:
            failed.append(f"{{type(error).__name__}} ({{error.strerror}}): {{path}}")
    if written:
        return f"wrote {{written}}"
    raise PermissionError(f"nothing writable: {{failed}}")
"""
DOUBLE_FORK = """
import time
def attack():
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork() == 0:  # a daemon, done properly: its own session, none of its parent's files
            os.closerange(0, 65536)
            os.execv("/bin/sleep", ["sleep", {seconds!r}])
        os._exit(0)
    os.waitpid(child, 0)
    while True:  # until the time limit
        time.sleep(0.1)
"""
FORK_BOMB = """
import time
def attack():
    count = 0
    while count < 2000:
        try:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
        except OSError as error:
            raise OSError(f"fork refused after {{count}} processes: {{error}}") from None
        count += 1
    return f"forked {{count}} processes"
"""
FILL_DISK = """
def attack():
    chunk, written = b"x" * (1 << 20), 0
    with open(os.path.join(os.environ["TMPDIR"], "fill"), "wb") as file:
        while written < (1 << 34):
            try:
                file.write(chunk)
                file.flush()
            except OSError as error:
                raise OSError(f"the scratch space is full after {{written >> 20}} MB: {{error}}") from None
            written += len(chunk)
    return f"wrote {{written >> 20}} MB"
"""
OUTBOUND = """
def attack():
    failed = []
    try:
        socket.getaddrinfo("pypi.org", 443)
    except OSError as error:
        failed.append(f"DNS: {{error}}")
    try:
        socket.create_connection(("151.101.0.223", 443), timeout=5).close()
        return "connected to 151.101.0.223:443"
    except OSError as error:
        failed.append(f"151.101.0.223:443: {{error}}")
    raise ConnectionError(f"no way out: {{failed}}")
"""
FORGED_LABELS = """
import io, json, os, sys
import pandas as pd

class Forger:
    def fit(self, x, y):
        return self

    def predict_proba(self, x):
        # Its own labels beside its predictions, sent on the harness's message pipe: all "late".
        forged = pd.DataFrame({"row_id": x.index, "y_true": 1.0, "y_pred": 1.0, "y_score": 1.0})
        buffer = io.BytesIO()
        forged.to_parquet(buffer)
        os.write(int(sys.argv[2]), json.dumps({"predictions": buffer.tell()}).encode() + b"\\n" + buffer.getvalue())
        os._exit(0)

def build():
    return Forger()
"""
PEEKING_FEATURES = """
import pandas as pd

def build(frames):
    f = frames["flights"]
    held_out = f["sched_dep_at"] >= f["sched_dep_at"].max().normalize() - pd.Timedelta(days=1)
    seen = {c: int(f.loc[held_out, c].notna().sum()) for c in ("dep_delay", "arr_delay", "dep_time")}
    if not any(seen.values()):
        raise LookupError(f"the held-out days' target is hidden: values seen {seen}")
    return pd.DataFrame({"id": f["id"], "sched_dep_at": f["sched_dep_at"], "peek": f["dep_delay"].fillna(0)})
"""


@pytest.fixture(scope="module")
def dagster_graphql(tmp_path_factory) -> Iterator[str]:
    """A real Dagster webserver (GraphQL at /graphql) on loopback, on a definitions file of its own."""
    root = tmp_path_factory.mktemp("graphql")
    (root / "defs.py").write_text("import dagster as dg\n\ndefs = dg.Definitions()\n")
    (root / "home").mkdir()
    (root / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    bin_dir = Path(sys.executable).parent
    webserver = Service(
        "graphql",
        [str(bin_dir / "dagster-webserver"), "-f", str(root / "defs.py"), "-h", "127.0.0.1", "-p", str(port)],
        {**os.environ, "DAGSTER_HOME": str(root / "home")},
        root,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the Dagster webserver", lambda: _answers(url + "/server_info"), 180, 0.5, service=webserver)
        yield url
    finally:
        webserver.stop()


def _answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


class Scene:
    """The deployment an attacker aims at: state, tokens, warehouse, environments, landing zone."""

    def __init__(self, state_dir: Path, api_url: str, graphql_url: str):
        self.state_dir = state_dir
        self.api_url = api_url
        self.graphql_url = graphql_url
        self.tokens = state_dir / "api_tokens"
        self.tokens.write_text("ada " + hashlib.sha256(b"token").hexdigest() + "\n")
        self.warehouse = state_dir / "warehouse.db"
        self.environments = state_dir / "environments"
        (self.environments / "0123456789abcdef0123" / "bin").mkdir(parents=True)
        (self.environments / "0123456789abcdef0123" / "bin" / "python").write_text("#!/bin/sh\n")
        self.inbox = settings.shared_dir() / "landing" / "inbox"
        self.inbox.mkdir(parents=True)
        (self.inbox / "observations.csv").write_text("station,value\nnorth,1\n")
        self.site_packages = Path(next(p for p in sys.path if p.endswith("site-packages")))

    def fingerprint(self) -> dict[str, str]:
        prints = {
            str(path): hashlib.sha256(path.read_bytes()).hexdigest()
            for root in (self.tokens, self.environments, self.inbox.parent)
            for path in ([root] if root.is_file() else sorted(root.rglob("*")))
            if path.is_file()
        }
        with sqlite3.connect(self.warehouse) as connection:
            tables = sorted(
                r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            )
            prints["tables"] = ",".join(t for t in tables if not t.startswith("evaluation_"))
            for table in ("flights", "weather"):
                rows = connection.execute(f'SELECT * FROM "{table}" ORDER BY 1, 2').fetchall()
                prints[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
        prints["site-packages"] = ",".join(sorted(os.listdir(self.site_packages)))
        return prints


@pytest.fixture
def scene(state_dir, warehouse, sqlite_api, dagster_graphql, monkeypatch) -> Iterator[Scene]:
    # The deployment's secret, in this process's environment and, as /proc shows only what a
    # process started with, in a process of the deployment's started with it (a daemon, say).
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", SECRET)
    holder = subprocess.Popen(["sleep", "300"], env={**os.environ, "DAGSTER_PG_PASSWORD": SECRET})
    try:
        yield Scene(state_dir, sqlite_api.url, dagster_graphql)
    finally:
        holder.kill()
        holder.wait()


def judge(suites, make_repo, name: str, files: dict, *, unsandboxed=False, baseline=False, limits=LIMITS):
    """Commit `files` (after a good commit, with `baseline`) and evaluate the last commit."""
    repo = make_repo(name)
    keys = []
    if baseline:
        keys.append(repo.commit("A good model", GOOD))
    keys.append(repo.commit(f"Attack: {name}", {**GOOD, **files}))
    suites.add(name, {"model": repo}, limits=limits, pinned=PINNED, unsandboxed=unsandboxed)

    results = []
    for sha in keys:
        key = str(EvaluationKey(name, (("model", sha),)))
        try:
            evaluation = evaluate_key(
                key, ModelRepositories().suites(), ModelRepositories().repository, Warehouse()
            )
            results.append((evaluation.status, "; ".join(evaluation.verdict.reasons)))
        except EvaluationFailed as failure:
            results.append(("failed", str(failure)))
    return results[-1]


def attacks(scene: Scene) -> dict[str, tuple[dict, str]]:
    """Each attack: the files its commit changes, and what its verdict must say."""
    secret_files = [str(scene.tokens), str(scene.warehouse)]
    services = [
        ("127.0.0.1", 5432),  # PostgreSQL: the instance and the warehouse
        ("127.0.0.1", int(scene.api_url.rsplit(":", 1)[1])),  # the data API
        ("127.0.0.1", int(scene.graphql_url.rsplit(":", 1)[1])),  # Dagster's GraphQL
    ]
    writes = [
        str(scene.inbox / "planted.csv"),
        str(scene.environments / "0123456789abcdef0123" / "bin" / "python"),
        str(scene.site_packages / "sitecustomize.py"),
        str(scene.warehouse),
    ]
    return {
        "perfect-labels": ({"model.py": FORGED_LABELS}, "roc_auc"),
        "loosen-gates": (
            {
                "collab.toml": CONTRACT.replace("min = 0.55", "min = 0.0").replace(
                    "max_drop = 0.01", "max_drop = 1.0"
                ),
                "model.py": FORGED_LABELS,
            },
            "gates.roc_auc.min: 0.55 -> 0.0",
        ),
        "read-held-out-target": ({"features.py": PEEKING_FEATURES}, "the held-out days' target is hidden"),
        "secret-in-env-list": (
            {"collab.toml": CONTRACT + '[environment]\nenv = ["DAGSTER_PG_PASSWORD"]\n'},
            "names ['DAGSTER_PG_PASSWORD'], which suite",
        ),
        "read-proc-environ": (
            {"model.py": attack_model(READ_PROC, secret=SECRET)},
            "no process's environment holds",
        ),
        "connect-services": ({"model.py": attack_model(CONNECT, services=services)}, "no service reachable"),
        "read-tokens-and-warehouse": (
            {"model.py": attack_model(READ_FILES, paths=secret_files)},
            "nothing readable: ['FileNotFoundError",
        ),
        "write-landing-zone-and-environments": (
            {"model.py": attack_model(WRITE_FILES, paths=writes)},
            "nothing writable",
        ),
        "fork-bomb": ({"model.py": attack_model(FORK_BOMB)}, "fork refused after"),
        "fill-the-disk": ({"model.py": attack_model(FILL_DISK)}, "the scratch space is full after"),
        "outbound-connection": ({"model.py": attack_model(OUTBOUND)}, "no way out"),
    }


@pytest.fixture(autouse=True)
def _sandbox_available():
    try:
        sandbox.check()
    except sandbox.SandboxUnavailable as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"the sandbox cannot start here: {error}")


ATTACKS = [
    "perfect-labels",
    "loosen-gates",
    "read-held-out-target",
    "secret-in-env-list",
    "read-proc-environ",
    "connect-services",
    "read-tokens-and-warehouse",
    "write-landing-zone-and-environments",
    "fork-bomb",
    "fill-the-disk",
    "outbound-connection",
]


@pytest.mark.parametrize("name", ATTACKS)
def test_a_hostile_commit_is_refused_and_changes_nothing(name, scene, suites, make_repo):
    files, expected = attacks(scene)[name]
    before = scene.fingerprint()
    free_before = shutil.disk_usage(scene.state_dir).free
    status, message = judge(suites, make_repo, name, files, baseline=name == "loosen-gates")
    assert status != "passed", message
    assert "LEAKED" not in message, message
    assert expected in message, message
    assert scene.fingerprint() == before
    # The scratch space is a tmpfs of its own size: the host's disk did not fill.
    assert free_before - shutil.disk_usage(scene.state_dir).free < 32 * 1024 * 1024


def test_a_fork_bomb_is_stopped_at_the_suites_process_limit(scene, suites, make_repo):
    status, message = judge(suites, make_repo, "bomb", {"model.py": attack_model(FORK_BOMB)})
    assert status == "failed"
    forked = int(message.split("fork refused after ")[1].split()[0])
    # The limit counts the sandbox's own processes too (bwrap's, under root's pids cgroup).
    assert forked <= LIMITS["processes"] + sandbox.PROCESS_OVERHEAD, message


def sleeping(seconds: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"sleep {seconds}"], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


@pytest.mark.parametrize("unsandboxed", [False, True], ids=["sandboxed", "unsandboxed-control"])
def test_a_double_fork_does_not_outlive_the_time_limit(unsandboxed, scene, suites, make_repo):
    seconds = f"900.{uuid.uuid4().int % 10**8}"
    model = attack_model(DOUBLE_FORK, seconds=seconds)
    status, message = judge(
        suites, make_repo, f"fork-{unsandboxed}", {"model.py": model}, unsandboxed=unsandboxed, limits=QUICK
    )
    assert status == "failed" and "time limit of 5 s exceeded" in message, message
    deadline = time.monotonic() + 10
    while sleeping(seconds) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = sleeping(seconds)
    for pid in survivors:
        os.kill(pid, 9)
    # Without the sandbox, the grandchild escapes the process group the harness kills.
    assert bool(survivors) == unsandboxed


@pytest.mark.parametrize("name", ["read-proc-environ", "connect-services", "read-tokens-and-warehouse"])
def test_without_the_sandbox_the_same_attacks_succeed(name, scene, suites, make_repo):
    files, _ = attacks(scene)[name]
    status, message = judge(suites, make_repo, f"control-{name}", files, unsandboxed=True)
    assert status == "failed" and "LEAKED" in message, message
    if name == "connect-services":  # every one of the three is a real, listening service
        for url in (
            "127.0.0.1:5432",
            scene.api_url.removeprefix("http://"),
            scene.graphql_url.removeprefix("http://"),
        ):
            assert url in message.split("LEAKED")[1], message


def test_a_good_commit_passes_in_the_sandbox_and_a_trusted_suite_says_it_ran_without(
    scene, suites, make_repo
):
    status, message = judge(suites, make_repo, "good", {})
    assert status == "passed" and "UNSANDBOXED" not in message, message
    status, message = judge(suites, make_repo, "trusted", {}, unsandboxed=True)
    assert status == "passed" and "UNSANDBOXED: suite 'trusted' sets unsandboxed: true" in message, message
    recorded = Warehouse().read("evaluation_results", columns=["suite", "status", "sandbox"])
    assert dict(zip(recorded["suite"], recorded["sandbox"], strict=True)) == {
        "good": "bubblewrap",
        "trusted": "none (suite sets unsandboxed: true)",
    }


def test_without_bubblewrap_an_evaluation_fails_saying_how_to_get_it(
    state_dir, warehouse, suites, make_repo, monkeypatch
):
    # A machine with git but without bubblewrap.
    bin_dir = state_dir / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(bin_dir))
    sandbox.check.cache_clear()
    try:
        status, message = judge(suites, make_repo, "no-bwrap", {})
    finally:
        sandbox.check.cache_clear()
    assert status == "failed", message
    assert "bwrap command is not installed" in message and "apt-get install bubblewrap" in message
    assert Warehouse().read("evaluation_results")["message"][0] == message
