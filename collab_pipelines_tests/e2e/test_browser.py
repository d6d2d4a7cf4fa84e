"""The project as a user meets it: started as README says, driven in a real headless Chromium.

Screenshots land in test-artifacts/browser/ for a person to look at.
"""

import os
import shutil
import urllib.request

import dagster as dg
import pytest

from collab_pipelines_tests.conftest import require_service
from collab_pipelines_tests.e2e.processes import PROJECT, Service, free_port, wait_for

pytestmark = pytest.mark.e2e
ARTIFACTS = PROJECT / "test-artifacts" / "browser"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        require_service("chromium", "install Debian's chromium package (.ci/run does)")
    return path


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """`make run`, exactly as README tells a newcomer, on a private state folder and port."""
    make = shutil.which("make")
    if not make:
        require_service("make", "the README's commands need GNU make")
    state = tmp_path_factory.mktemp("project") / "state"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "COLLAB_STATE_DIR")}
    service = Service("make-run", [make, "run", f"STATE={state}", f"PORT={port}"], env, state.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("the Dagster UI", lambda: http_ok(f"{base}/server_info"), 300, service=service)
        with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
            yield {"base": base, "instance": instance, "state": state, "service": service}
    finally:
        service.stop()


@pytest.fixture(scope="module")
def page(project):
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_path(page, project, path: str) -> None:
    page.goto(project["base"] + path)
    page.wait_for_load_state("networkidle")
    # The community dialog is off in dagster.yaml; skip it if a future version shows it anyway.
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()


def test_lineage_shows_the_exports_and_what_uses_them(page, project):
    open_path(page, project, "/asset-groups")
    for group in ("exports", "intake"):
        page.get_by_text(group, exact=True).first.wait_for()
    shot(page, "01-lineage-groups")
    open_path(page, project, "/locations/collab_pipelines:defs/asset-groups/exports")
    for asset in ("flights", "weather", "airlines", "airports", "planes"):
        page.get_by_text(asset, exact=True).first.wait_for()
    shot(page, "01-lineage-exports")
    # The weather export feeds the combined observations, beside the SFTP uploads.
    open_path(page, project, "/assets/weather_observations?view=lineage")
    for asset in ("weather", "weather_observations_uploads", "weather_observations"):
        page.get_by_text(asset, exact=True).first.wait_for()
    shot(page, "01-lineage-weather")


def test_sensors_and_schedules_are_running(page, project):
    open_path(page, project, "/automation")
    names = ["daily_exports_new_data_sensor", "dimension_exports_missing_sensor", "upload_sensor",
             "daily_exports_schedule", "dimension_exports_schedule", "replay_clock_schedule"]
    for name in names:
        page.get_by_text(name, exact=True).first.wait_for()
    # Each row has a selection box (unchecked) and a running/stopped switch; the switches'
    # state loads after the names, so wait for it (up to a minute) before counting.
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            f"document.querySelectorAll('input[type=checkbox]:checked').length >= {len(names)}", timeout=60_000)
    except PlaywrightTimeout:
        pass  # the assertion below reports how many are running
    running = page.locator("input[type=checkbox]:checked").count()
    shot(page, "02-automation")
    assert running >= len(names), f"only {running} of {len(names)} automations are running"


def test_a_backfill_of_a_range_launched_from_the_ui_succeeds(page, project):
    instance: dg.DagsterInstance = project["instance"]
    before = {b.backfill_id for b in instance.get_backfills()}
    open_path(page, project, "/jobs")
    page.locator('a[href$="/jobs/daily_exports"]').first.click()
    page.get_by_text("Materialize all").first.click()
    page.get_by_placeholder("ex: 2013-01-01").fill("[2013-01-02...2013-01-04]")
    page.keyboard.press("Enter")
    page.get_by_text("3 partitions").first.wait_for()
    shot(page, "03-backfill-dialog")
    page.get_by_role("button", name="Launch backfill").click()

    def backfill_done():
        new = [b for b in instance.get_backfills() if b.backfill_id not in before]
        return new and new[0].status.value.startswith("COMPLETED") and new[0]

    backfill = wait_for("the backfill to complete", backfill_done, 300, service=project["service"])
    assert backfill.status.value == "COMPLETED_SUCCESS", backfill.status
    open_path(page, project, f"/runs/b/{backfill.backfill_id}")
    shot(page, "04-backfill-done")
    materialized = instance.get_materialized_partitions(dg.AssetKey("flights"))
    assert {"2013-01-02", "2013-01-03", "2013-01-04"} <= set(materialized)
