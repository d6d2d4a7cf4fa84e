"""The package's shape: nothing runs at import, and dependencies point one way."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from collab_pipelines import config, schemas
from collab_pipelines_tests.e2e.processes import PROJECT

PACKAGE = PROJECT / "collab_pipelines"
PATTERNS = ("exports", "evaluation", "reports", "intake", "data_api", "demo")
# Shared modules every pattern may use; none of them may know a pattern.
SHARED = [
    *sorted((PACKAGE / "warehouse").glob("*.py")),
    PACKAGE / "settings.py",
    PACKAGE / "config.py",
    PACKAGE / "retries.py",
    PACKAGE / "fault_points.py",
    PACKAGE / "run_launcher.py",
    PACKAGE / "dagster_internals.py",
]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", SHARED, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_shared_modules_import_no_pattern(path):
    patterns = {f"collab_pipelines.{name}" for name in PATTERNS}
    offending = {
        m for m in imported_modules(path) if m in patterns or m.startswith(tuple(f"{p}." for p in patterns))
    }
    assert offending == set(), f"{path} imports pattern modules {sorted(offending)}"


def fresh_import(statement: str) -> set[str]:
    """Run `statement` in a new interpreter; return every module it loaded."""
    probe = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=PROJECT
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_importing_the_package_builds_no_definitions():
    loaded = fresh_import(
        "import collab_pipelines, collab_pipelines.definitions as d\n"
        "from dagster.components.definitions import LazyDefinitions\n"
        "assert isinstance(d.defs, LazyDefinitions), type(d.defs)"
    )
    built = {name for name in loaded if name.startswith(tuple(f"collab_pipelines.{p}" for p in PATTERNS))}
    assert built == set(), f"importing the entry point loaded pattern modules {sorted(built)}"
    assert not top_level(loaded) & {"dagstermill", "sklearn"}


@pytest.mark.parametrize(
    "module",
    [
        "collab_pipelines.data_api.client",
        "collab_pipelines.reports.notebook",
        "collab_pipelines.reports.preview",
        "collab_pipelines.datasets",
        "collab_pipelines.retries",
    ],
)
def test_light_modules_load_neither_dagster_nor_sklearn(module):
    heavy = top_level(fresh_import(f"import {module}")) & {"dagster", "dagstermill", "sklearn"}
    assert heavy == set(), f"import {module} loads {sorted(heavy)}"


def test_the_harness_runs_where_dagster_is_not_installed():
    # One harness, three callers: the server's evaluations, the champion's predictions and a
    # data scientist's own try on a laptop, where Dagster is not installed.
    loaded = fresh_import(
        "import sys\nsys.modules['dagster'] = None  # an import of it fails, as it would there\n"
        "import collab_pipelines.evaluation.candidate_process, collab_pipelines.evaluation.pins, "
        "collab_pipelines.evaluation.gates, collab_pipelines.evaluation.verdict, "
        "collab_pipelines.evaluation.local_try, collab_pipelines.evaluation.cli"
    )
    assert "collab_pipelines.evaluation.sandbox" in loaded and "collab_pipelines.evaluation.heldout" in loaded
    assert "collab_pipelines.data_api.cache" in loaded


def client_packages() -> dict[str, list[str]]:
    """What client/setup.py ships: its MODULES literal, module names by package."""
    tree = ast.parse((PROJECT / "client" / "setup.py").read_text())
    return next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "MODULES"
    )


def client_modules(package: str) -> list[str]:
    """The modules client/setup.py ships of `package`."""
    return [f"{package}.{name}" for name in client_packages()[package] if name != "__init__"]


def test_the_report_preview_runs_where_dagster_is_not_installed():
    # collab-report preview, and a template's report_inputs in its kernel, on a laptop with the
    # client distribution's `reports` extra: Dagster and dagstermill are not there.
    modules = client_modules("collab_pipelines.reports") + client_modules("collab_pipelines.warehouse")
    loaded = fresh_import(
        "import sys\nsys.modules['dagster'] = None\nsys.modules['dagstermill'] = None\n"
        + "".join(f"import {module}\n" for module in modules)
    )
    assert "collab_pipelines.reports.preview" in modules and "collab_pipelines.reports.sources" in loaded


def test_the_client_distribution_ships_every_module_its_modules_import():
    # A shipped module importing one left out fails on the laptop only, where the checkout's
    # copy is not there to hide it (rendering.py's fault points once did).
    packages = client_packages()
    shipped = {
        package if name == "__init__" else f"{package}.{name}"
        for package in packages
        for name in packages[package]
    }
    loaded = fresh_import(
        "import sys\nsys.modules['dagster'] = None\nsys.modules['dagstermill'] = None\n"
        + "".join(f"import {module}\n" for module in sorted(shipped))
    )
    missing = {name for name in loaded if name.split(".")[0] == "collab_pipelines"} - shipped
    assert missing == set(), f"client/setup.py's MODULES lacks {sorted(missing)}, which its modules import"


def test_committed_json_schemas_are_up_to_date(tmp_path):
    assert schemas.main(["--out", str(tmp_path)]) == 0
    for entry in schemas.SCHEMA_FILES:
        committed = schemas.DOCS_SCHEMAS / entry.file
        assert committed.exists(), f"{committed} is missing: run python -m collab_pipelines.schemas"
        assert committed.read_text() == (tmp_path / entry.file).read_text(), f"{committed} is stale"


@pytest.mark.parametrize("entry", schemas.SCHEMA_FILES, ids=lambda e: e.file)
def test_every_configuration_file_validates_against_its_schema(entry):
    schema = json.loads((schemas.DOCS_SCHEMAS / entry.file).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert entry.examples, f"{entry.file} names no example file to validate"
    for example in entry.examples:
        path = PROJECT / example
        raw = config.read_toml(path) if path.suffix == ".toml" else yaml.safe_load(path.read_text())
        jsonschema.validate(raw, schema, cls=jsonschema.Draft202012Validator)


def test_xdist_groups_keep_a_module_on_one_worker(tmp_path):
    """`make test` relies on `--dist loadgroup`: the browser module starts one demo, the export
    faults one cluster. A pytest or pytest-xdist release that drops the groups (pytest 9.2 with
    xdist 3.8 did) would start them on both workers, at twice the load."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_grouped.py").write_text(
        "import os\n"
        "import pytest\n"
        "pytestmark = pytest.mark.xdist_group('one')\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_grouped(i):\n"
        "    with open('workers.txt', 'a') as f:\n"
        "        f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_free(i):\n"
        "    pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    workers = (tmp_path / "workers.txt").read_text().split()
    assert len(workers) == 6 and len(set(workers)) == 1, f"one group ran on workers {sorted(set(workers))}"
