"""Where the project keeps its state, read from the environment only when asked.

Nothing here runs at import time: tests and deployments set the environment after the
package is imported, and Dagster code servers import it long before a run starts.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "COLLAB_STATE_DIR"
WAREHOUSE_URL_ENV = "COLLAB_WAREHOUSE_URL"


def state_dir() -> Path:
    """This process's own state (git-ignored `.state/`): caches it can rebuild, scratch files.

    Nothing another process reads lives here; that is `shared_dir()`. It defaults to `.state`
    under the current directory, the project directory for `make run`, `dagster dev` and the
    code server.
    """
    path = Path(os.environ.get(STATE_DIR_ENV) or Path.cwd() / ".state").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


SHARED_DIR_ENV = "COLLAB_SHARED_DIR"


def shared_dir() -> Path:
    """What one process writes and another reads: `$COLLAB_SHARED_DIR`, default the state folder.

    The landing zone (uploads, staging, quarantine), rendered reports and tuning work. A run may
    execute in another container or pod than the code server, the SFTP server or a Celery
    worker, so a deployment mounts one shared volume at this path in each of them
    (docs/deploy.md). The code server serves the UI's "View Notebook" only from inside its
    working directory, so the path lies under it (`/app/.shared` in the image, whose working
    directory is `/app`). Unset, it is the state folder: one machine needs nothing shared.
    """
    value = os.environ.get(SHARED_DIR_ENV)
    if not value:
        return state_dir()
    path = Path(value).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def warehouse_url() -> str:
    """The warehouse: `$COLLAB_WAREHOUSE_URL`, or a SQLite file in the state folder."""
    return os.environ.get(WAREHOUSE_URL_ENV) or sqlite_url(state_dir() / "warehouse.db")


CONFIG_DIR_ENV = "COLLAB_CONFIG_DIR"


def config_dir() -> Path:
    """A team's whole configuration, in one folder it owns (`$COLLAB_CONFIG_DIR`, default `config/`).

    It holds `catalog.yaml` (exports and their connections), `suites.yaml` (model
    repositories), `templates/` (report notebooks), `uploads.yaml` (upload types) and
    `sftp_accounts.yaml` (uploaders). A missing file defines nothing of that pattern, so an
    empty folder is a valid, empty deployment. docs/deploy.md describes each file.
    """
    return Path(os.environ.get(CONFIG_DIR_ENV) or Path.cwd() / "config").resolve()


def catalog_file() -> Path:
    return config_dir() / "catalog.yaml"


def templates_dir() -> Path:
    return config_dir() / "templates"


def uploads_file() -> Path:
    return config_dir() / "uploads.yaml"


def sftp_accounts_file() -> Path:
    return config_dir() / "sftp_accounts.yaml"


SUITES_FILE_ENV = "COLLAB_SUITES_FILE"


def suites_file() -> Path:
    """The evaluation suites: `$COLLAB_SUITES_FILE`, else `suites.yaml` in the configuration folder.

    The variable exists for suites written on the machine itself: the demo registers the
    model repository it creates under the state folder, so its suites file lives there too.
    """
    return Path(os.environ.get(SUITES_FILE_ENV) or config_dir() / "suites.yaml")


def strict() -> bool:
    """`COLLAB_STRICT=1` (CI, `make check`): a broken configuration entry fails the definitions load."""
    return os.environ.get("COLLAB_STRICT", "").strip().lower() in ("1", "true", "yes")


def dagster_url() -> str:
    """Where people open the Dagster UI (`COLLAB_DAGSTER_URL`), for links printed or posted
    outside it: a report's notebook view from a command-line run, an evaluation's run."""
    return os.environ.get("COLLAB_DAGSTER_URL") or "http://localhost:3000"


def code_location() -> str | None:
    """The code location's name in the UI (`COLLAB_CODE_LOCATION`), for runs that do not carry
    it (command-line runs); unset, it is read from the working directory's workspace.yaml."""
    return os.environ.get("COLLAB_CODE_LOCATION") or None


REPORT_KERNELS_ENV = "COLLAB_REPORT_KERNELS"
# One: a second kernel pays off only with a spare core (docs/reports.md, "Speed").
DEFAULT_REPORT_KERNELS = 1


def report_kernels() -> int:
    """How many Jupyter kernels a report step may keep at once (`COLLAB_REPORT_KERNELS`, default 1).

    A range's days render on that many kernels in parallel (docs/reports.md, "Speed"); a run's
    own `kernels` config wins over it. Each kernel is a process of its own, with its own memory.
    """
    value = os.environ.get(REPORT_KERNELS_ENV, "").strip()
    if not value:
        return DEFAULT_REPORT_KERNELS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{REPORT_KERNELS_ENV}={value!r}: expected a whole number of kernels, 1 or more")
    return int(value)
