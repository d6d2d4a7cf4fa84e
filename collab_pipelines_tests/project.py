"""The project's definitions for tests, built once per test process on first use."""

import functools

import dagster as dg

from collab_pipelines.definitions import build_definitions


@functools.cache
def project_defs() -> dg.Definitions:
    return build_definitions()
