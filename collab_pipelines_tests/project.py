"""The definitions the pattern tests exercise, built once per test process on first use.

Most pattern tests run on the demo's configuration (the NYC catalog and templates), so
this is the demo code location; the product location is tested in product/.
"""

import functools

import dagster as dg

from collab_pipelines.definitions import build_definitions
from collab_pipelines.demo.definitions import build_defs as demo_defs
from collab_pipelines.demo.paths import DEMO_CONFIG


@functools.cache
def project_defs() -> dg.Definitions:
    # conftest points $COLLAB_CONFIG_DIR at the same folder for what runs resolve lazily.
    return dg.Definitions.merge(build_definitions(DEMO_CONFIG), demo_defs())
