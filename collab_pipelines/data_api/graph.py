"""The project's asset graph as the data API reads it: lineage, check names, partition bounds.

The server takes it from a child process (`load`), which builds the project's definitions,
writes what the API needs as JSON and exits. Building them imports every pattern's code
(scikit-learn, papermill, dagstermill, paramiko): about 100 MB that the server would hold
for its lifetime, a third of its memory, for a few hundred keys. Dagster's own webserver keeps
user code out of its process the same way.

    python -m collab_pipelines.data_api.graph OUT.json   # what the child runs
"""

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg

log = logging.getLogger(__name__)
# Building the definitions takes seconds; a child stuck far beyond that is killed, and the
# server starts without lineage rather than not at all.
_BUILD_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class AssetNode:
    parent_keys: frozenset[dg.AssetKey]
    child_keys: frozenset[dg.AssetKey]
    check_keys: frozenset[dg.AssetCheckKey]
    start: date | None
    """A time-partitioned asset's first day."""
    end: date | None
    """Its end (exclusive), if it has one."""


class AssetGraph:
    """The nodes the API reads, by key; `has` and `get` as on Dagster's own asset graph."""

    def __init__(self, nodes: dict[dg.AssetKey, AssetNode]):
        self.nodes = nodes

    def has(self, key: dg.AssetKey) -> bool:
        return key in self.nodes

    def get(self, key: dg.AssetKey) -> AssetNode:
        return self.nodes[key]

    @classmethod
    def of(cls, asset_graph) -> "AssetGraph":
        """What the API reads of a Dagster asset graph (a repository's `asset_graph`)."""
        nodes = {}
        for key in asset_graph.get_all_asset_keys():
            node = asset_graph.get(key)
            partitions = node.partitions_def
            start, end = getattr(partitions, "start", None), getattr(partitions, "end", None)
            nodes[key] = AssetNode(
                parent_keys=frozenset(node.parent_keys),
                child_keys=frozenset(node.child_keys),
                check_keys=frozenset(node.check_keys),
                start=start.date() if start else None,
                end=end.date() if end else None,
            )
        return cls(nodes)

    def to_json(self) -> str:
        return json.dumps(
            [
                {
                    "key": key.path,
                    "parents": _paths(node.parent_keys),
                    "children": _paths(node.child_keys),
                    "checks": sorted(check.name for check in node.check_keys),
                    "start": node.start.isoformat() if node.start else None,
                    "end": node.end.isoformat() if node.end else None,
                }
                for key, node in self.nodes.items()
            ]
        )

    @classmethod
    def from_json(cls, text: str) -> "AssetGraph":
        nodes = {}
        for entry in json.loads(text):
            key = dg.AssetKey(entry["key"])
            nodes[key] = AssetNode(
                parent_keys=frozenset(dg.AssetKey(path) for path in entry["parents"]),
                child_keys=frozenset(dg.AssetKey(path) for path in entry["children"]),
                check_keys=frozenset(dg.AssetCheckKey(key, name) for name in entry["checks"]),
                start=date.fromisoformat(entry["start"]) if entry["start"] else None,
                end=date.fromisoformat(entry["end"]) if entry["end"] else None,
            )
        return cls(nodes)


def _paths(keys: Iterable[dg.AssetKey]) -> list[list[str]]:
    return sorted(key.path for key in keys)


def load(timeout: float = _BUILD_TIMEOUT_SECONDS) -> AssetGraph | None:
    """The project's asset graph, built in a child process; None when the definitions do not load.

    Another pattern's broken definitions must not take the data API down with them: the
    rows stay available and lineage reports itself as unavailable. The child inherits this
    process's environment, so it reads the same configuration folder.
    """
    with tempfile.TemporaryDirectory(prefix="collab-asset-graph-") as folder:
        out = Path(folder) / "graph.json"
        command = [sys.executable, "-m", __name__, str(out)]
        try:
            child = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            log.error(
                "the project's definitions did not load within %s s (%s); lineage and checks are unavailable",
                timeout,
                " ".join(command),
            )
            return None
        if child.returncode != 0 or not out.exists():
            log.error(
                "the project's definitions did not load (%s exited %s); lineage and checks are unavailable:\n%s",
                " ".join(command),
                child.returncode,
                child.stderr[-5000:],
            )
            return None
        return AssetGraph.from_json(out.read_text())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m collab_pipelines.data_api.graph OUT.json", file=sys.stderr)
        return 2
    from collab_pipelines.definitions import build_definitions

    graph = AssetGraph.of(build_definitions().get_repository_def().asset_graph)
    Path(argv[0]).write_text(graph.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
