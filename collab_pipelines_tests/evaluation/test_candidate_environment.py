"""The candidate's process: only the environment it needs, its output as it runs, its own
packages from a cached uv environment, and the stage a time limit stopped."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from collab_pipelines.evaluation import environments
from collab_pipelines.evaluation.candidate_process import EvaluationFailed, evaluate
from collab_pipelines.evaluation.contract import parse_contract
from collab_pipelines.evaluation.repos import GitRepository
from collab_pipelines_tests.evaluation.test_candidate_process import CONTRACT, GOOD_MODEL, TEST_LIMITS, frames

SECRETS = {
    "DAGSTER_PG_PASSWORD": "pg-secret",
    "COLLAB_WAREHOUSE_URL": "postgresql://collab:wh-secret@db/warehouse",
    "COLLAB_API_TOKENS": "ada:token-secret",
    "GITHUB_STATUS_TOKEN": "gh-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
}
# Dumped on import, before scikit-learn sets its own KMP_* variables in the process.
DUMPING_MODEL = (
    "import json, os\n"
    "print('ENV ' + json.dumps(dict(os.environ)))\n"
    "open(os.path.join(os.environ['HOME'], '.modelrc'), 'w').write('a home it can write to')\n"
    "print('CWD ' + os.getcwd())\n" + GOOD_MODEL
)


def run(source: Path, model: str, contract: str = CONTRACT, limits=TEST_LIMITS, cache: Path | None = None):
    (source / "model.py").write_text(model)
    lines: list[tuple[str, str]] = []
    outcome = evaluate(
        source,
        parse_contract(contract, "model@abc1234:collab.toml"),
        frames(),
        pd.Timestamp("2013-01-14"),
        "model@abc1234",
        limits,
        output=lambda stream, line: lines.append((stream, line)),
        environments=cache,
    )
    return outcome, lines


def test_the_candidate_gets_a_minimal_environment_and_no_secret(tmp_path, state_dir, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODEL_SEED", "42")
    source = tmp_path / "source"
    source.mkdir()
    contract = CONTRACT + '[environment]\nenv = ["MODEL_SEED", "NOT_SET_ANYWHERE"]\n'
    _, lines = run(source, DUMPING_MODEL, contract)
    printed = dict(line.split(" ", 1) for stream, line in lines if stream == "stdout")
    env, cwd = json.loads(printed["ENV"]), Path(printed["CWD"])
    assert not {value for value in env.values()} & set(SECRETS.values())
    assert set(env) == {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "PYTHONHASHSEED",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "MODEL_SEED",
        "PWD",  # set by bubblewrap's --chdir: the export's path inside the sandbox
    }
    assert env["MODEL_SEED"] == "42" and env["OMP_NUM_THREADS"] == "1"
    # Inside the sandbox: its scratch tmpfs is home, and the export is mounted at a path of its own.
    assert env["HOME"] == "/tmp/home" and env["TMPDIR"] == "/tmp"
    assert cwd == Path("/collab/src/0") == Path(env["PWD"])


def test_output_and_warnings_are_forwarded_line_by_line_and_reported_values_kept(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    model = (
        "import warnings\nfrom sklearn.linear_model import LogisticRegression\n"
        "from collab_eval import report\n\n"
        "class Noisy(LogisticRegression):\n"
        "    def fit(self, x, y):\n"
        "        for epoch in range(3):\n"
        "            print(f'epoch {epoch} loss {1 / (epoch + 1):.3f}')\n"
        "        warnings.warn('features look collinear')\n"
        "        report(train_loss=0.333, importances={'x': 1.0})\n"
        "        return super().fit(x, y)\n\n"
        "def build():\n    return Noisy()\n"
    )
    outcome, lines = run(source, model)
    assert [line for stream, line in lines if stream == "stdout"] == [
        "epoch 0 loss 1.000",
        "epoch 1 loss 0.500",
        "epoch 2 loss 0.333",
    ]
    assert any("UserWarning: features look collinear" in line for stream, line in lines if stream == "stderr")
    assert outcome.reported == {"train_loss": 0.333, "importances": {"x": 1.0}}


def test_the_time_limit_names_the_stage_that_was_running(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    model = "class M:\n    def fit(self, x, y):\n        while True:\n            pass\n\ndef build():\n    return M()\n"
    with pytest.raises(EvaluationFailed, match="time limit of 3 s exceeded during fit") as raised:
        run(source, model, limits=TEST_LIMITS.model_copy(update={"seconds": 3}))
    assert raised.value.stage == "limits"


PYJOKES_MODEL = GOOD_MODEL.replace(
    "def build():", "import pyjokes\n\nJOKE = pyjokes.get_joke()\n\ndef build():\n    print(pyjokes.__file__)"
)


def exported(repo, tmp_path: Path, sha: str, name: str) -> Path:
    return GitRepository(str(repo.path), tmp_path / "mirrors").export(sha, tmp_path / name)


def test_a_commit_gets_its_declared_packages_from_a_cached_environment(tmp_path, make_repo):
    # pyjokes: small, pure Python, from the package index, and not a dependency of the project.
    with pytest.raises(ImportError):
        __import__("pyjokes")
    cache = tmp_path / "environments"
    repo = make_repo("model")
    first = repo.commit("Jokes", {"requirements.txt": "pyjokes==0.8.3\n", "model.py": PYJOKES_MODEL})
    _, lines = run(exported(repo, tmp_path, first, "first"), PYJOKES_MODEL, cache=cache)
    [printed] = [line for stream, line in lines if stream == "stdout"]
    assert Path(printed).is_relative_to(cache)
    [built] = [p for p in cache.iterdir() if not p.name.startswith(".")]
    ready = built / "collab-ready.json"
    built_at = json.loads(ready.read_text())["built"]

    # Another commit with the same requirements reuses the environment: no second build.
    second = repo.commit(
        "Tweak", {"model.py": PYJOKES_MODEL.replace("LogisticRegression()", "LogisticRegression(C=0.5)")}
    )
    source = exported(repo, tmp_path, second, "second")
    _, lines = run(source, (source / "model.py").read_text(), cache=cache)
    assert [p for p in cache.iterdir() if not p.name.startswith(".")] == [built]
    assert json.loads(ready.read_text())["built"] == built_at
    assert [line for stream, line in lines if stream == "stdout"] == [printed]


def test_an_environment_changed_after_its_build_is_built_anew(tmp_path):
    cache = tmp_path / "environments"
    source = tmp_path / "source"
    source.mkdir()
    (source / "requirements.txt").write_text("pyjokes==0.8.3\n")
    python = Path(environments.python_for(source, None, cache))
    ready = python.parent.parent / "collab-ready.json"
    recorded = json.loads(ready.read_text())
    assert recorded["sha256"] == environments.content_digest(python.parent.parent)
    assert environments.python_for(source, None, cache) == str(python)  # verified: used as it is
    assert json.loads(ready.read_text())["built"] == recorded["built"]

    [module] = python.parent.parent.glob("lib/python*/site-packages/pyjokes/__init__.py")
    module.write_text(module.read_text() + "\nimport os; os.system('echo poisoned')\n")
    assert environments.python_for(source, None, cache) == str(python)
    rebuilt = json.loads(ready.read_text())
    assert rebuilt["built"] > recorded["built"]
    assert rebuilt["sha256"] == environments.content_digest(python.parent.parent)
    assert "poisoned" not in module.read_text()


def test_an_uninstallable_requirement_fails_at_stage_environment_with_the_installers_words(
    tmp_path, make_repo
):
    repo = make_repo("model")
    sha = repo.commit(
        "Needs a package that does not exist",
        {"requirements.txt": "collab-no-such-package-8d1f3a==1.0\n", "model.py": GOOD_MODEL},
    )
    with pytest.raises(EvaluationFailed) as raised:
        run(exported(repo, tmp_path, sha, "source"), GOOD_MODEL, cache=tmp_path / "environments")
    assert raised.value.stage == "environment"
    message = str(raised.value)
    assert message.startswith("model@abc1234: environment failed: installing requirements.txt failed:")
    assert "collab-no-such-package-8d1f3a" in message and "not found" in message.lower()


def test_the_build_is_said_line_by_line_without_an_index_urls_credentials(tmp_path, monkeypatch):
    # pip's configuration is what the build takes its indexes from; this one holds a password.
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nextra-index-url = https://ada:s3cret-token@127.0.0.1:9/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    environments._index_args.cache_clear()
    source = tmp_path / "source"
    source.mkdir()
    (source / "requirements.txt").write_text("# nothing to install\n")
    said: list[tuple[str, str]] = []
    try:
        environments.python_for(source, None, tmp_path / "environments", lambda *line: said.append(line))
    finally:
        environments._index_args.cache_clear()  # the next caller reads the machine's own settings
    assert {stream for stream, _ in said} == {environments.STREAM}
    lines = [line for _, line in said]
    [install] = [line for line in lines if line.startswith("$ ") and " pip install " in line]
    assert "https://***@127.0.0.1:9/simple" in install
    assert not any("s3cret-token" in line for line in lines)
    assert lines[-1].startswith("requirements.txt: environment built in ")


def test_a_commit_without_a_declaration_runs_with_the_projects_interpreter(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    assert environments.python_for(source, None, tmp_path / "environments") == sys.executable
    assert not (tmp_path / "environments").exists()


def test_the_cache_evicts_the_least_recently_used_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(environments.MAX_ENV, "2")
    cache = tmp_path / "environments"
    pythons = []
    for number in range(3):
        source = tmp_path / f"source{number}"
        source.mkdir()
        (source / "requirements.txt").write_text(f"# nothing to install, declaration {number}\n")
        pythons.append(environments.python_for(source, None, cache))
        if number == 1:  # the first is used again, so the second is the least recently used
            assert environments.python_for(tmp_path / "source0", None, cache) == pythons[0]
    kept = sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))
    assert kept == sorted(Path(p).parents[1].name for p in (pythons[0], pythons[2]))
