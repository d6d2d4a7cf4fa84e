"""The link that opens a rendered report in the UI, for every kind of run.

The webserver's notebook view needs the code location's name (`repoLocName`). A run launched
from the UI, a sensor or a schedule carries it in its remote origin; a run from the command
line (`dagster job execute`, `dagster asset materialize`) has no remote origin, so its name comes
from the setting COLLAB_CODE_LOCATION, or else from the workspace.yaml in the code's working
directory: the entry that loads the same module (or file) the run loaded.
"""

import urllib.parse
from pathlib import Path

import dagster as dg
import yaml

from collab_pipelines import settings


def code_server_directory(context: dg.AssetExecutionContext) -> Path:
    """The code server's working directory, the only folder its notebook view reads from.

    The run's code origin records it: a run may execute in another pod or folder than the code
    server, so the run's own working directory says nothing about it.
    """
    origin = context.run.job_code_origin
    pointer = getattr(origin.repository_origin, "code_pointer", None) if origin else None
    return Path(getattr(pointer, "working_directory", None) or Path.cwd())


def workspace_location(workspace: Path, module: str | None, python_file: str | None) -> str | None:
    """The location_name of the workspace entry that loads `module` (or `python_file`)."""
    try:
        config = yaml.safe_load(workspace.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    for entry in config.get("load_from") or []:
        for kind, target in (entry or {}).items():
            if not isinstance(target, dict) or not target.get("location_name"):
                continue
            if kind in ("python_module", "python_package") and module and target.get("module_name") == module:
                return target["location_name"]
            if kind == "python_file" and python_file and target.get("relative_path"):
                if (workspace.parent / target["relative_path"]).resolve() == Path(python_file).resolve():
                    return target["location_name"]
    return None


def location_name(context: dg.AssetExecutionContext) -> str | None:
    """The code location's name as the UI knows it, or None when nothing says it."""
    origin = context.run.remote_job_origin
    if origin is not None:
        return origin.location_name
    if configured := settings.code_location():
        return configured
    code = context.run.job_code_origin
    pointer = getattr(code.repository_origin, "code_pointer", None) if code else None
    return workspace_location(
        code_server_directory(context) / "workspace.yaml",
        getattr(pointer, "module", None),
        getattr(pointer, "python_file", None),
    )


def notebook_link(context: dg.AssetExecutionContext, path: Path) -> str | None:
    """The webserver's own notebook view of `path`, relative so it works behind any host name.

    Dagster 1.13 shows "View Notebook" only for unpartitioned assets, so every report gets a
    link a person can click.
    """
    location = location_name(context)
    if location is None:
        return None
    return "/notebook?" + urllib.parse.urlencode({"path": str(path), "repoLocName": location})


def absolute(link: str) -> str:
    """The link as a person opens it from a terminal: on the UI's address (COLLAB_DAGSTER_URL)."""
    return settings.dagster_url().rstrip("/") + link
