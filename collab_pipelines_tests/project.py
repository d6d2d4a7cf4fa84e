"""The definitions the pattern tests exercise, built once per test process on first use.

Most pattern tests run on the demo's configuration (the NYC catalog and templates), so
this is the demo code location; the product location is tested in product/.
"""

import functools
import os
import tempfile
from pathlib import Path

import dagster as dg
import yaml

from collab_pipelines import settings
from collab_pipelines.definitions import build_definitions
from collab_pipelines.demo.definitions import build_defs as demo_defs
from collab_pipelines.demo.paths import DEMO_CONFIG

# The demo location always has a suite: `make run` registers the demo's model repository before
# Dagster loads it, and without one the location defines no evaluation at all.
SUITE = "delays"


@functools.cache
def project_defs() -> dg.Definitions:
    # conftest points $COLLAB_CONFIG_DIR at the same folder for what runs resolve lazily. The
    # suites file is read while the definitions are built; the tests' own state folders keep
    # theirs for what sensors and runs read later.
    with tempfile.TemporaryDirectory(prefix="collab-project-suites-") as folder:
        suites = Path(folder) / "suites.yaml"
        suites.write_text(
            yaml.safe_dump({"suites": {SUITE: {"repositories": {"model": {"location": folder}}}}})
        )
        before = os.environ.get(settings.SUITES_FILE_ENV)
        os.environ[settings.SUITES_FILE_ENV] = str(suites)
        try:
            return dg.Definitions.merge(build_definitions(DEMO_CONFIG), demo_defs())
        finally:
            if before is None:
                del os.environ[settings.SUITES_FILE_ENV]
            else:
                os.environ[settings.SUITES_FILE_ENV] = before
