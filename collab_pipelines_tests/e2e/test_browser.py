"""The project as a user meets it: started as README says, driven in a real headless Chromium.

Screenshots land in a temporary folder, or in $COLLAB_TEST_ARTIFACTS/browser/ for a person to look
at; the test never writes into the tree. `make screenshot` refreshes README's picture of the
report link (docs/reports-open-in-one-click.png) from this test, and only then.
"""

import os
import shutil
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import dagster as dg
import pytest

from collab_pipelines_tests.conftest import require_service
from collab_pipelines_tests.e2e.processes import PROJECT, Service, free_port, wait_for

# One worker runs the whole module: its `make run` is module-scoped, and under xdist's plain
# load distribution each worker that got one of its tests would start a demo of its own.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]
# README's Pattern 3 shows where to click with this test's screenshot; `make screenshot` names
# the file here, and a plain test run writes nothing outside its temporary folders.
DOCS_SCREENSHOT = "COLLAB_DOCS_SCREENSHOT"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
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
    # Inside the project, as `make run`'s default .state/ is: the UI renders only notebooks
    # under the code location's working directory.
    state = PROJECT / f".state-e2e-{uuid.uuid4().hex[:8]}"
    logs = tmp_path_factory.mktemp("project")
    port, api_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DAGSTER_HOME", "COLLAB_STATE_DIR", "COLLAB_WAREHOUSE_URL", "COLLAB_SUITES_FILE")
    }
    service = Service(
        "make-run", [make, "run", f"STATE={state}", f"PORT={port}", f"API_PORT={api_port}"], env, logs
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("the Dagster UI", lambda: http_ok(f"{base}/server_info"), 300, service=service)
        wait_for("the data API", lambda: http_ok(f"http://127.0.0.1:{api_port}/health"), 60, service=service)
        with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
            yield {
                "base": base,
                "api": f"http://127.0.0.1:{api_port}",
                "instance": instance,
                "state": state,
                "service": service,
            }
    finally:
        service.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    kept = os.environ.get("COLLAB_TEST_ARTIFACTS")
    if not kept:
        return tmp_path_factory.mktemp("browser")
    folder = Path(kept) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page(project):
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shot(artifacts):
    def take(page, name: str) -> None:
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)

    return take


def open_path(page, project, path: str) -> None:
    page.goto(project["base"] + path)
    page.wait_for_load_state("networkidle")
    # The community dialog is off in dagster.yaml; skip it if a future version shows it anyway.
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()


def open_report(page, link):
    """Click a materialization's `report` link; the notebook view may open in a new tab."""
    if link.get_attribute("target") != "_blank":
        link.click()
        page.wait_for_load_state("networkidle")
        return page
    with page.context.expect_page(timeout=90_000) as opened:
        link.click()
    opened.value.wait_for_load_state("networkidle")
    return opened.value


def test_lineage_shows_the_exports_and_what_uses_them(page, project, shot):
    open_path(page, project, "/asset-groups")
    for group in ("exports", "intake"):
        page.get_by_text(group, exact=True).first.wait_for()
    shot(page, "01-lineage-groups")
    open_path(page, project, "/locations/collab_pipelines_demo/asset-groups/exports")
    for asset in ("flights", "weather", "airlines", "airports", "planes"):
        page.get_by_text(asset, exact=True).first.wait_for()
    shot(page, "01-lineage-exports")
    # The weather export feeds the combined observations, beside the SFTP uploads.
    open_path(page, project, "/assets/weather_observations?view=lineage")
    for asset in ("weather", "weather_observations_uploads", "weather_observations"):
        page.get_by_text(asset, exact=True).first.wait_for()
    shot(page, "01-lineage-weather")
    # Exports feed the evaluation of commits, which feeds its report; flights feed theirs.
    open_path(page, project, "/assets/model_evaluation?view=lineage&lineageScope=neighbors&lineageDepth=1")
    for asset in ("flights", "weather", "model_evaluation"):
        page.get_by_text(asset, exact=True).first.wait_for()
    shot(page, "01-lineage-evaluation")
    # With every upstream export beside it, the graph is taller than the window and the UI draws
    # only what is in view; a person switches to the downstream side to see what reads it, on a
    # large screen: the evaluations feed reports, tuning, the champion and its predictions.
    page.set_viewport_size({"width": 2560, "height": 1600})
    try:
        page.get_by_role("button", name="Downstream").click()
        downstream = (
            "model_evaluation",
            "evaluation_report",
            "evaluation_trend",
            "tuning_candidates",
            "delay_model_champion",
            "delay_model_predictions",
        )
        for asset in downstream:
            page.get_by_text(asset, exact=True).first.wait_for()
        shot(page, "01-lineage-evaluation-downstream")
    finally:
        page.set_viewport_size({"width": 1440, "height": 900})
    open_path(page, project, "/assets/flights_quality_report?view=lineage")
    for asset in ("flights", "flights_quality_report"):
        page.get_by_text(asset, exact=True).first.wait_for()


def test_sensors_and_schedules_are_running(page, project, shot):
    open_path(page, project, "/automation")
    names = [
        "daily_exports_new_data_sensor",
        "dimension_exports_missing_sensor",
        "upload_sensor",
        "model_commits_sensor",
        "reports_automation_sensor",
        "daily_exports_schedule",
        "dimension_exports_schedule",
        "replay_clock_schedule",
    ]
    for name in names:
        page.get_by_text(name, exact=True).first.wait_for()
    # Each row has a selection box (unchecked) and a running/stopped switch; the switches'
    # state loads after the names, so wait for it (up to a minute) before counting.
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            f"document.querySelectorAll('input[type=checkbox]:checked').length >= {len(names)}",
            timeout=60_000,
        )
    except PlaywrightTimeout:
        pass  # the assertion below reports how many are running
    running = page.locator("input[type=checkbox]:checked").count()
    shot(page, "02-automation")
    assert running >= len(names), f"only {running} of {len(names)} automations are running"


# A person launches a backfill while the demo is busy (exports, evaluations, their reports, a
# new replayed day every few minutes: it never goes idle); its run queues with the sensors' runs,
# ahead of the reports (reports_automation_sensor's runs have a lower priority).
@pytest.mark.timeout(900)
def test_a_backfill_of_a_range_launched_from_the_ui_succeeds(page, project, shot):
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

    def launched_here() -> list:
        # The reports' automation emits backfills of its own while the demo runs.
        return [
            b
            for b in instance.get_backfills()
            if b.backfill_id not in before and "dagster/auto_materialize" not in b.tags
        ]

    def backfill_done():
        new = launched_here()
        return len(new) == 1 and new[0].status.value.startswith("COMPLETED") and new[0]

    backfill = wait_for("the backfill to complete", backfill_done, 600, service=project["service"])
    assert backfill.status.value == "COMPLETED_SUCCESS", backfill.status
    open_path(page, project, f"/runs/b/{backfill.backfill_id}")
    shot(page, "04-backfill-done")
    assert len(launched_here()) == 1
    # The demo exported these days already; the backfill's own runs wrote them again.
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs), runs
    rewritten = {
        record.asset_materialization.partition
        for record in materializations(instance, "flights")
        if record.run_id in {run.run_id for run in runs}
    }
    assert rewritten == {"2013-01-02", "2013-01-03", "2013-01-04"}, rewritten


def materializations(instance: dg.DagsterInstance, asset: str) -> list:
    return instance.fetch_materializations(dg.AssetKey(asset), limit=100).records


def test_an_evaluation_metric_is_plotted_across_commits(page, project, shot):
    # The demo's model repository was evaluated on its own: its commits reach the sensor once
    # the first days are exported.
    wait_for(
        "two evaluated commits",
        lambda: len(materializations(project["instance"], "model_evaluation")) >= 2,
        600,
        service=project["service"],
    )
    open_path(page, project, "/assets/model_evaluation")
    page.get_by_role("button", name="Plots").click()  # the metadata section's table/plots switch
    page.get_by_text("metric/roc_auc", exact=True).first.wait_for()
    page.locator("canvas").first.wait_for()
    shot(page, "05-evaluation-plots")
    open_path(page, project, "/assets/model_evaluation?view=checks")
    page.get_by_text("metric_gates", exact=True).first.wait_for()
    shot(page, "05-evaluation-checks")


# The first daily report follows the demo's first exports and evaluations on a busy machine.
@pytest.mark.timeout(1800)
def test_a_partitioned_report_opens_in_one_click_with_nothing_from_outside(page, project, shot):
    instance = project["instance"]
    wait_for(
        "a daily report",
        lambda: materializations(instance, "flights_quality_report"),
        1200,
        service=project["service"],
    )
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    # Where a person starts: the report asset's page, its events, the newest day's entry.
    open_path(page, project, "/assets/flights_quality_report?view=events")
    # The `report` entry of the newest materialization's metadata (the visible link, not a copy).
    link = page.locator('a[href^="/notebook?"]:visible').first
    link.wait_for()
    shot(page, "06-report-materialization")
    if os.environ.get(DOCS_SCREENSHOT):
        page.screenshot(path=os.environ[DOCS_SCREENSHOT])
    view = open_report(page, link)
    text = view.inner_text("body")
    shot(view, "06-view-notebook")
    assert "Access denied" not in text and "Internal Server Error" not in text
    assert "Flights data quality" in text, text[:500]
    assert view.locator("img").count() >= 2  # the report's charts
    assert "InstanceRef" not in text and "storage" not in text.lower()
    elsewhere = sorted({url for url in requested if urllib.parse.urlsplit(url).hostname != "127.0.0.1"})
    assert not elsewhere, f"requests left the machine: {elsewhere}"
    if view is not page:
        view.close()


def test_the_data_api_documents_itself(page, project, shot):
    page.goto(project["api"] + "/docs")
    page.get_by_text("collab_pipelines data API").first.wait_for()
    page.get_by_text("/v1/datasets", exact=False).first.wait_for()
    shot(page, "07-data-api-docs")


def tab(page, view: str) -> None:
    """An asset page's tab (Overview, Events, Checks...), not the sidebar's item of the same name."""
    page.locator(f'a[href$="?view={view}"]:visible').first.click()
    page.wait_for_url(f"**view={view}**")


# The champion is promoted by the last_passing policy once a commit passes; the champion sensor
# then predicts the recent days, and each predicted day renders its drift report.
@pytest.mark.timeout(1800)
def test_the_champion_leads_to_its_predictions_and_their_drift_report(page, project, shot):
    instance = project["instance"]
    wait_for(
        "a drift report of the champion's predictions",
        lambda: materializations(instance, "delay_model_drift_report"),
        1200,
        service=project["service"],
    )
    # Where a person starts: the suite's champion, which names its commit and who promoted it.
    open_path(page, project, "/assets/delay_model_champion")
    page.get_by_text("delay_model_champion", exact=True).first.wait_for()
    shot(page, "08-champion")
    # Downstream of the champion: its daily predictions.
    page.locator('a[href$="/assets/delay_model_predictions"]:visible').first.click()
    page.wait_for_url("**/assets/delay_model_predictions**")
    page.get_by_text("delay_model_predictions", exact=True).first.wait_for()
    shot(page, "08-predictions")
    # Its day-by-day checks: the champion's quality and the columns' drift.
    tab(page, "checks")
    for check in ("champion_quality", "feature_drift"):
        page.get_by_text(check, exact=True).first.wait_for()
    shot(page, "08-predictions-checks")
    tab(page, "overview")
    # Downstream of the predictions: the drift report of each day, opened in one click.
    page.locator('a[href$="/assets/delay_model_drift_report"]:visible').first.click()
    page.wait_for_url("**/assets/delay_model_drift_report**")
    tab(page, "events")
    link = page.locator('a[href^="/notebook?"]:visible').first
    link.wait_for()
    shot(page, "08-drift-report-events")
    view = open_report(page, link)
    text = view.inner_text("body")
    shot(view, "08-drift-report")
    assert "Champion drift report" in text, text[:500]
    assert "Quality by day" in text and "Columns that moved" in text
    assert "delay-model" in text  # the suite it is about
    if view is not page:
        view.close()
