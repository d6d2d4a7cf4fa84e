"""The asset graph the data API takes from a child process: the project's own, and nothing loaded here."""

import json
import logging
import os
import subprocess
import sys
from datetime import date

import dagster as dg

from collab_pipelines import settings
from collab_pipelines.data_api import graph
from collab_pipelines.data_api.auth import hash_token
from collab_pipelines.definitions import build_definitions
from collab_pipelines_tests.e2e.processes import PROJECT


def test_the_child_builds_the_graph_dagster_builds_here():
    built_here = build_definitions().get_repository_def().asset_graph
    loaded = graph.load()
    assert loaded is not None
    assert loaded.nodes == graph.AssetGraph.of(built_here).nodes
    flights = loaded.get(dg.AssetKey("flights"))
    assert flights.start == built_here.get(dg.AssetKey("flights")).partitions_def.start.date()
    assert dg.AssetCheckKey(dg.AssetKey("flights"), "non_empty") in flights.check_keys
    assert dg.AssetKey("weather_observations") in loaded.get(dg.AssetKey("weather")).child_keys


def test_json_keeps_every_field():
    key, parent = dg.AssetKey(["a", "b"]), dg.AssetKey("up")
    nodes = {
        key: graph.AssetNode(
            parent_keys=frozenset({parent}),
            child_keys=frozenset(),
            check_keys=frozenset({dg.AssetCheckKey(key, "fresh")}),
            start=date(2013, 1, 1),
            end=date(2014, 1, 1),
        ),
        parent: graph.AssetNode(frozenset(), frozenset({key}), frozenset(), None, None),
    }
    assert graph.AssetGraph.from_json(graph.AssetGraph(nodes).to_json()).nodes == nodes


def test_broken_definitions_leave_the_server_without_lineage_saying_why(tmp_path, monkeypatch, caplog):
    (tmp_path / "catalog.yaml").write_text("exports: [unclosed\n")
    monkeypatch.setenv(settings.CONFIG_DIR_ENV, str(tmp_path))
    with caplog.at_level(logging.ERROR, logger=graph.__name__):
        assert graph.load() is None
    message = caplog.records[-1].getMessage()
    assert "the project's definitions did not load" in message
    assert "catalog.yaml" in message  # the child's own error, naming the file


def test_the_server_process_loads_no_pattern_run_time_code(tmp_path):
    """Building the definitions (scikit-learn, papermill, dagstermill, paramiko) stays in the child."""
    probe = (
        "import json, sys\n"
        "from collab_pipelines.data_api import server\n"
        "catalog = server.build_app().state.config.catalog\n"
        "print(json.dumps([catalog.asset_graph is not None, sorted(sys.modules)]))\n"
    )
    env = {
        **os.environ,
        "COLLAB_API_TOKENS": f"probe:{hash_token('probe-token')}",
        "COLLAB_STATE_DIR": str(tmp_path),
        "COLLAB_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}",
    }
    env.pop("DAGSTER_HOME", None)
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=PROJECT, env=env
    )
    has_graph, modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert has_graph, result.stderr[-3000:]
    heavy = {name.split(".")[0] for name in modules} & {
        "sklearn",
        "scipy",
        "papermill",
        "dagstermill",
        "paramiko",
    }
    assert heavy == set()
    assert not any(name.endswith(".definitions") for name in modules if name.startswith("collab_pipelines"))
