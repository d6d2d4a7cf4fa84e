"""Where the demo keeps its configuration, and how a demo process switches to it.

The demo is the product's own patterns run on a configuration folder of its own
(`demo/config/`: the NYC catalog, the flights report template, the meteorology upload type),
plus the few moving parts only a demo needs (`demo/definitions.py`). This module imports
no Dagster: the `collab-demo` command and the test suite use it too.
"""

from __future__ import annotations

import os
from pathlib import Path

from collab_pipelines import settings

DEMO_CONFIG = Path(__file__).resolve().with_name("config")
DEMO_CATALOG = DEMO_CONFIG / "catalog.yaml"
DEMO_TEMPLATES = DEMO_CONFIG / "templates"


def use_demo_configuration() -> None:
    """Point this process, and every process it starts, at the demo's configuration.

    Runs, report kernels and the data API resolve the configuration folder from the
    environment when they need it, so the demo code location sets it when it loads, and a
    run launched from that location loads it again before running.
    """
    os.environ[settings.CONFIG_DIR_ENV] = str(DEMO_CONFIG)
    # The demo's model repository is created on this machine (collab-demo model-repo), so
    # its suites file is machine state, not packaged configuration.
    os.environ.setdefault(settings.SUITES_FILE_ENV, str(settings.state_dir() / "suites.yaml"))
