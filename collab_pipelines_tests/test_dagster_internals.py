"""The private Dagster and dagstermill parts the project uses, each checked by name and shape.

Only the two modules in ALLOWED reach them (docs/architecture.md says why):
reports/dagstermill_internals.py for dagstermill's, dagster_internals.py for Dagster's. A Dagster
or dagstermill upgrade that moves or reshapes one fails here, naming it, before a report, an
export or run monitoring fails somewhere less clear. The report, export and run-launcher tests
exercise their behaviour (exports/test_production_storage.py checks the days' events reach
PostgreSQL storage in batches; test_run_launcher.py has run monitoring fail a killed worker's run).
"""

import ast
import importlib
import inspect
from pathlib import Path

import dagster as dg
import pytest

from collab_pipelines import dagster_internals

PACKAGE = Path(__file__).resolve().parents[1] / "collab_pipelines"
# Module -> why it may use Dagster's or dagstermill's private parts.
ALLOWED = {
    "reports/dagstermill_internals.py": "a kept kernel renders many notebooks (dagstermill's engine, context cell)",
    "dagster_internals.py": "the exports' per-day data versions in one event batch; a run launcher's health check",
}
# Private members of public Dagster classes, reached by attribute rather than by import.
PRIVATE_ATTRIBUTES = {"get_step_execution_context", "_instance"}


def private_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
        for name in names:
            if name.startswith("dagster._") or (name.startswith("dagstermill.") and name != "dagstermill"):
                found.append(f"line {node.lineno}: {name}")
    return found


def test_only_the_two_allowed_modules_use_private_internals():
    users = {
        str(path.relative_to(PACKAGE)): uses for path in PACKAGE.rglob("*.py") if (uses := private_uses(path))
    }
    assert set(users) <= set(ALLOWED), {k: v for k, v in users.items() if k not in ALLOWED}
    assert len(ALLOWED) <= 2


def test_docs_architecture_says_why_each_module_needs_them():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for module in ALLOWED:
        assert f"`{module}`" in text, module


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_dagstermill_internals_the_reports_use_are_where_and_as_they_were():
    factory = importlib.import_module("dagstermill.factory")
    assert parameters(factory.get_papermill_parameters) == [
        "step_context",
        "inputs",
        "output_log_path",
        "compute_descriptor",
    ]
    translator = importlib.import_module("dagstermill.translator")
    assert callable(translator.DagsterTranslator.codify)
    engine = importlib.import_module("dagstermill.engine")
    # The warm kernel's engine overrides this classmethod and builds the client with a kept km.
    assert "execute_managed_notebook" in vars(engine.DagstermillEngine)
    assert {"nb_man", "km"} <= set(parameters(engine.DagstermillNotebookClient.__init__))
    assert callable(engine.DagstermillNotebookClient.execute)
    # The step's context, which get_papermill_parameters takes, is reached through this method.
    assert callable(dg.OpExecutionContext.get_step_execution_context)


def test_dagster_internals_the_exports_use_are_where_and_as_they_were():
    events = importlib.import_module("dagster._core.events")
    assert parameters(events.DagsterEvent.asset_materialization)[:3] == [
        "step_context",
        "materialization",
        "batch_metadata",
    ]
    assert events.DagsterEventBatchMetadata("x", True) == ("x", True)
    assert isinstance(events.generate_event_batch_id(), str)
    data_version = importlib.import_module("dagster._core.definitions.data_version")
    # The tags the UI and the records read a user-provided data version from.
    assert data_version.DATA_VERSION_TAG == "dagster/data_version"
    assert data_version.DATA_VERSION_IS_USER_PROVIDED_TAG == "dagster/data_version_is_user_provided"
    # Dagster's own reader of a data version finds the one the exports write.
    observation = dg.AssetObservation("flights", tags=dagster_internals.versioned("abc"))
    assert observation.data_version == "abc"
    materialization = dg.AssetMaterialization("flights", tags=dagster_internals.versioned("abc"))
    assert dagster_internals.data_version_of(materialization) == "abc"
    # The step's context, which DagsterEvent.asset_materialization takes, is reached through this.
    assert callable(dg.OpExecutionContext.get_step_execution_context)


def test_the_run_launchers_health_types_are_where_and_as_they_were():
    launcher = importlib.import_module("dagster._core.launcher")
    assert {"RUNNING", "FAILED"} <= {status.name for status in launcher.WorkerStatus}
    assert parameters(launcher.CheckRunHealthResult)[:2] == ["status", "msg"]
    # Run monitoring compares a health check's status with this very enum.
    monitoring = importlib.import_module("dagster._daemon.monitoring.run_monitoring")
    assert monitoring.WorkerStatus is dagster_internals.WorkerStatus
    # The instance a launcher is registered with, behind a weak reference.
    assert isinstance(inspect.getattr_static(launcher.RunLauncher, "_instance"), property)
    assert issubclass(dg.DefaultRunLauncher, launcher.RunLauncher)


@pytest.mark.parametrize(
    "module",
    [
        "collab_pipelines.reports.dagstermill_internals",
        "collab_pipelines.dagster_internals",
        "collab_pipelines.exports.assets",
        "collab_pipelines.run_launcher",
    ],
)
def test_the_modules_import(module):
    importlib.import_module(module)
