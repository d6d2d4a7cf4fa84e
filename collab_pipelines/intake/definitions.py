"""Everything pattern 5 defines, from an uploads file. The warehouse resource comes from the root."""

from pathlib import Path

import dagster as dg

from collab_pipelines import settings
from collab_pipelines.intake.assets import build_intake_assets
from collab_pipelines.intake.landing import landing_zone_from
from collab_pipelines.intake.sensors import build_upload_sensor
from collab_pipelines.intake.upload_types import load_uploads


def build_defs(uploads_path: Path | str | None = None) -> dg.Definitions:
    """The upload types of `uploads_path` (default: the configuration folder's `uploads.yaml`).

    A missing file means no upload types: no assets, no sensor, no landing zone.
    """
    uploads = load_uploads(uploads_path or settings.uploads_file())
    if not uploads.upload_types:
        return dg.Definitions()
    return dg.Definitions(
        assets=build_intake_assets(list(uploads.upload_types.values())),
        sensors=[build_upload_sensor(uploads)],
        resources={"landing_zone": landing_zone_from(uploads.landing_zone)},
    )
