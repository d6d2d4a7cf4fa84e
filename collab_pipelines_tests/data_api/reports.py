"""Report materializations as the reports pattern records them: metadata `html_path`."""

from pathlib import Path

import dagster as dg

REPORT_KEY = "daily_delay_report"


def report_materialization(
    instance: dg.DagsterInstance,
    path: Path,
    *,
    asset_key: str = REPORT_KEY,
    partition: str | None = None,
    html: str | None = None,
) -> None:
    if html is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey(asset_key.split("/")),
            partition=partition,
            metadata={"html_path": dg.MetadataValue.path(str(path))},
        )
    )
