"""Ingestion assets: one per upload type, one partition per upload."""

import hashlib
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from collab_pipelines.intake.landing import LandingZone
from collab_pipelines.intake.partitions import split_staged_name, upload_partitions
from collab_pipelines.intake.schemas import (
    UPLOAD_TYPES,
    WEATHER_OBSERVATIONS,
    UploadType,
)
from collab_pipelines.intake.sensors import SIDECAR_SUFFIXES
from collab_pipelines.intake.validation import validate_upload
from collab_pipelines.warehouse.resources import Warehouse

INTAKE_GROUP = "intake"
UPLOAD_COLUMNS = ("upload_id", "uploader", "file_name", "_loaded_at")


def uploader_of(key: str) -> str:
    return key.rsplit("-", 1)[0]


def build_uploads_asset(upload_type: UploadType) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{upload_type.name}_uploads",
        partitions_def=upload_partitions[upload_type.name],
        group_name=INTAKE_GROUP,
        owners=list(upload_type.owners),
        kinds={"sftp", "pandas"},
        tags={"collab/pattern": "intake"},
        description=f"{upload_type.description} One partition per uploaded file; invalid files are "
        "quarantined with a report the uploader can read.",
    )
    def _uploads(context: dg.AssetExecutionContext, landing_zone: LandingZone, warehouse: Warehouse):
        key = context.partition_key
        user = uploader_of(key)
        staged = [f for f in landing_zone.list(user, "staging") if f.name.startswith(f"{key}__")]
        files = [f for f in staged if not f.name.endswith(SIDECAR_SUFFIXES)]
        if not files:
            raise dg.Failure(
                description=f"upload {key}: no file in {user}/staging; it was already processed "
                f"(see {user}/processed or {user}/quarantine) or never staged",
            )
        upload = files[0]
        # The upload moves last (see sensors.py): a crash midway leaves it in staging, to be recovered.
        staged.sort(key=lambda landed: landed.name == upload.name)
        original = split_staged_name(upload.name)[1]
        data = landing_zone.read(user, "staging", upload.name)
        frame, report = validate_upload(data, original, upload_type)
        if not report.ok:
            # The reason is written first, so a quarantined file is never without it.
            landing_zone.write_text(user, "quarantine", f"{upload.name}.error.txt", report.text())
            for landed in staged:
                landing_zone.move(user, "staging", landed.name, "quarantine")
            raise dg.Failure(
                description=f"upload {original!r} from {user} was quarantined:\n{report.text()}",
                metadata={"uploader": user, "file_name": original, "problems": len(report.problems)},
            )
        frame.insert(0, "upload_id", key)
        frame.insert(1, "uploader", user)
        frame.insert(2, "file_name", original)
        frame["_loaded_at"] = datetime.now(UTC).replace(tzinfo=None)
        # Keyed by upload: a re-run after a crash replaces, never duplicates.
        warehouse.replace(f"{upload_type.name}_uploads", frame, where={"upload_id": key})
        for landed in staged:
            landing_zone.move(user, "staging", landed.name, "processed")
        context.log.info(f"ingested {len(frame)} rows of {original!r} from {user}")
        return dg.MaterializeResult(
            metadata={
                "uploader": user,
                "file_name": original,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "dagster/row_count": len(frame),
                "landing_zone": landing_zone.describe(),
                "preview": dg.MetadataValue.md(frame.head(10).astype(str).to_markdown(index=False)),
            }
        )

    return _uploads


@dg.asset(
    name="weather_observations",
    group_name=INTAKE_GROUP,
    owners=["team:meteorology", "team:data-engineering"],
    kinds={"pandas", "sql"},
    tags={"collab/pattern": "intake"},
    deps=["weather", "weather_observations_uploads"],
    description="Every hourly weather observation: the exported `weather` table, with the "
    "meteorology team's uploaded observations taking precedence for the same airport and hour. "
    "Evaluation features and reports that need weather read this table.",
)
def weather_observations(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    columns = [c.name for c in WEATHER_OBSERVATIONS.columns]
    parts = []
    if warehouse.has_table("weather"):
        exported = warehouse.read("weather", columns=columns)
        exported["source"] = "export"
        parts.append(exported)
    if warehouse.has_table("weather_observations_uploads"):
        uploaded = warehouse.read("weather_observations_uploads", columns=[*columns, "_loaded_at"])
        uploaded = uploaded.sort_values("_loaded_at").drop(columns="_loaded_at")
        uploaded["source"] = "upload"
        parts.append(uploaded)
    if not parts:
        raise dg.Failure(description="neither the weather export nor any upload is in the warehouse yet")
    combined = pd.concat(parts, ignore_index=True)
    combined["observed_at"] = pd.to_datetime(combined["observed_at"])
    combined = combined.drop_duplicates(["origin", "observed_at"], keep="last")
    warehouse.replace("weather_observations", combined)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(combined),
            "rows_from_uploads": int((combined["source"] == "upload").sum()),
        }
    )


def build_intake_assets() -> list[dg.AssetsDefinition]:
    return [*(build_uploads_asset(t) for t in UPLOAD_TYPES.values()), weather_observations]
