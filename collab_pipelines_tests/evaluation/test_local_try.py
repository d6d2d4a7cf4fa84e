"""`collab-eval try`: a working tree judged through a real data API server as the server judges
its commit, on a deployment whose exports ran for real and a real git repository."""

import html
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from collab_pipelines import settings
from collab_pipelines.data_api.client import Client
from collab_pipelines.data_api.scope import Scope
from collab_pipelines.data_api.tokens import issue_token
from collab_pipelines.evaluation import cli
from collab_pipelines.evaluation.commit_evaluation import evaluate_key
from collab_pipelines.evaluation.local_try import try_tree
from collab_pipelines.evaluation.repos import GitRepository
from collab_pipelines.evaluation.suites import EvaluationKey, load_suites
from collab_pipelines.warehouse.engine import dispose_engines
from collab_pipelines_tests.data_api.conftest import TOKEN, fill, make_deployment, start_api
from collab_pipelines_tests.e2e.processes import PROJECT
from collab_pipelines_tests.evaluation.conftest import Repo, Suites
from collab_pipelines_tests.evaluation.test_evaluation import FEATURES, GOOD, WITHOUT_HOUR

# Its module-scoped services are built once, on one xdist worker (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("local_try")

SUITE = "delays"
LIMITS = {"seconds": 120, "memory_mb": 3072}
DAYS = 7  # the contract reads flights, 2013-01-01 .. 2013-01-07


class Scene:
    def __init__(self, root, source_template):
        self.deployment = make_deployment(root, source_template, "sqlite", None)
        self.suites_file = self.deployment.state_dir / "suites.yaml"
        self.env = {
            settings.STATE_DIR_ENV: str(self.deployment.state_dir),
            settings.SUITES_FILE_ENV: str(self.suites_file),
        }
        self.repo = Repo(root / "model")
        self.good = self.repo.commit("Baseline", GOOD)
        self.worse = self.repo.commit("Simplify: drop the departure hour", {"features.py": WITHOUT_HOUR})
        suites = Suites(self.suites_file)
        suites.add(SUITE, {"model": self.repo}, limits=LIMITS)
        self.server = {}

    def evaluate(self, sha: str):
        """The server's evaluation of a commit, recorded in the deployment's warehouse."""
        key = str(EvaluationKey(SUITE, (("model", sha),)))
        mirrors = self.deployment.state_dir / "git-mirrors"
        self.server[sha] = evaluate_key(
            key,
            load_suites(self.suites_file),
            lambda spec: GitRepository(spec.location, mirrors, spec.name),
            self.deployment.warehouse(),
        )
        return self.server[sha]


@pytest.fixture(scope="module")
def scene(tmp_path_factory, source_template):
    root = tmp_path_factory.mktemp("try")
    made = Scene(root, source_template)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in made.env.items():
            patch.setenv(name, value)
        patch.delenv(settings.WAREHOUSE_URL_ENV, raising=False)
        service = start_api(made.deployment, root, made.env, wait=False)
        try:
            fill(made.deployment)
            made.evaluate(made.good)
            made.evaluate(made.worse)
            from collab_pipelines_tests.data_api.conftest import wait_until_healthy

            wait_until_healthy(service)
            made.url = service.url
            made.cache = root / "cache"
            yield made
        finally:
            service.stop()
            made.deployment.instance.dispose()
            dispose_engines(made.deployment.warehouse_url)


def run_cli(scene, *args) -> tuple[int, dict]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(
            ["try", SUITE, str(scene.repo.path), "--url", scene.url, "--token", TOKEN, "--json", *args]
        )
    return code, json.loads(out.getvalue())


def test_a_clean_tree_gets_the_servers_verdict_to_the_last_digit_and_the_second_try_downloads_nothing(scene):
    server = scene.server[scene.worse]
    assert server.status == "regressed"  # the scene's premise: a real regression
    with Client(scene.url, TOKEN) as client:
        first = try_tree(scene.repo.path, SUITE, client, cache_dir=scene.cache)
        second = try_tree(scene.repo.path, SUITE, client, cache_dir=scene.cache)

    assert first.key == str(server.checkout.key)
    assert first.status == server.status
    assert first.reasons == list(server.verdict.reasons)
    assert first.baseline_key == server.baseline_key == str(scene.server[scene.good].checkout.key)
    assert first.data["data_version"] == server.data.data_version
    assert first.notes == server.notes  # the baseline's stored predictions, as on the server
    expected = {
        metric: {
            "value": c.value,
            "baseline_value": c.baseline_value,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
        }
        for metric, c in server.verdict.comparisons.items()
    }
    assert first.metrics == expected  # exact floats, not approximately
    assert first.prediction_diff["sentence"] == server.diff.sentence
    assert len(first.changed) == server.diff.changed > 0

    assert len(first.fetched.downloaded) == DAYS and first.fetched.bytes > 0
    assert second.fetched.downloaded == [] and len(second.fetched.unchanged) == DAYS
    assert second.metrics == first.metrics and second.reasons == first.reasons


def test_exit_codes_and_the_report_for_uncommitted_changes(scene, tmp_path):
    report = tmp_path / "report.html"
    code, regressed = run_cli(scene, "--html", str(report))
    assert (code, regressed["status"], regressed["exit_code"]) == (1, "regressed", 1)
    assert regressed["reasons"] == list(scene.server[scene.worse].verdict.reasons)
    page = report.read_text()
    assert "regressed" in page and html.escape(regressed["reasons"][0]) in page and "Changed rows" in page

    features = scene.repo.path / "features.py"
    try:
        features.write_text(FEATURES)  # uncommitted: the hour is back
        code, passed = run_cli(scene)
        assert (code, passed["status"]) == (0, "passed"), passed
        assert passed["evaluation_key"].endswith("~uncommitted")
        # Its nearest passed ancestor is the baseline, and HEAD (regressed) is not.
        assert passed["baseline_key"] == str(scene.server[scene.good].checkout.key)
        assert passed["downloaded"]["partitions"] == 0  # the cache served every day

        features.write_text("def build(frames:\n")
        (scene.repo.path / "untracked_helper.py").write_text("X = 1\n")
        code, failed = run_cli(scene)
        assert (code, failed["status"], failed["stage"]) == (2, "failed", "import"), failed
        assert "SyntaxError" in failed["reasons"][0] and "uncommitted" in failed["reasons"][0]
    finally:
        scene.repo.git("checkout", "--", "features.py")
        (scene.repo.path / "untracked_helper.py").unlink(missing_ok=True)


def test_a_token_scoped_to_the_suite_and_its_dataset_is_enough(scene):
    tokens = scene.deployment.state_dir / "api_tokens"
    scoped, _ = issue_token("ada-try", tokens, Scope(datasets=("flights",), suites=(SUITE,), reports=()))
    with Client(scene.url, scoped) as client:
        result = try_tree(scene.repo.path, SUITE, client, cache_dir=scene.cache)
    assert (result.status, result.reasons) == ("regressed", list(scene.server[scene.worse].verdict.reasons))

    other, _ = issue_token("bob-try", tokens, Scope(datasets=("flights",), suites=("rain",), reports=()))
    code = cli.main(["try", SUITE, str(scene.repo.path), "--url", scene.url, "--token", other])
    assert code == 2  # the suite is not this token's: as if it did not exist
    code = cli.main(["try", SUITE, str(scene.repo.path), "--url", scene.url, "--token", "wrong"])
    assert code == cli.API_ERROR


# The client distribution's own requirements, pinned to what this checkout is tested with.
CLIENT_REQUIREMENTS = ("pandas", "pyarrow", "scikit-learn", "httpx", "pydantic", "pyyaml", "psutil")


def test_the_client_distribution_tries_a_model_where_dagster_is_not_installed(scene, tmp_path):
    # A fresh virtual environment; uv (the project's installer) fills it from its cache in
    # seconds where pip would download about 150 MB.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python, uv = venv / "bin" / "python", Path(sys.executable).parent / "uv"
    pins = [f"{name}=={metadata.version(name)}" for name in CLIENT_REQUIREMENTS]
    for args in (pins, ["--no-deps", str(PROJECT / "client")]):
        subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(python), *args], check=True)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "COLLAB_CACHE_DIR": str(tmp_path / "cache"),
        "COLLAB_API_URL": scene.url,
        "COLLAB_API_TOKEN": TOKEN,
    }
    probe = subprocess.run(
        [str(python), "-c", "import collab_pipelines.evaluation.cli as m; print(m.__file__); import dagster"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.startswith(str(venv)), probe  # the installed copy, not the checkout
    assert "No module named 'dagster'" in probe.stderr

    done = subprocess.run(
        [str(venv / "bin" / "collab-eval"), "try", SUITE, str(scene.repo.path), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    server = scene.server[scene.worse]
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["reasons"] == list(server.verdict.reasons)
    assert result["metrics"]["roc_auc"]["value"] == server.verdict.comparisons["roc_auc"].value
