"""Ingestion assets: one per upload type, one partition per upload; and the combined tables.

A refused upload is a verdict on the data, not a crash: its partition is materialized with
no rows, `verdict: refused` and the reasons, and its `upload_accepted` check fails (severity
ERROR) with the same reasons. The run succeeds, so it is never retried, and run-failure
alerts keep meaning that something broke: the landing zone or the warehouse.
"""

import hashlib
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from collab_pipelines.intake.landing import LandingZone
from collab_pipelines.intake.names import as_text, decode_original
from collab_pipelines.intake.partitions import name_record, split_staged_name, upload_partitions, uploader_of
from collab_pipelines.intake.sensors import SIDECAR_SUFFIXES, UPLOAD_ACCEPTED
from collab_pipelines.intake.upload_types import UploadType
from collab_pipelines.intake.validation import ValidationReport, validate_upload
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines.warehouse.tables import TableLayout

UPLOAD_LAYOUT = TableLayout(indexes=(("upload_id",),))

INTAKE_GROUP = "intake"
# A landing zone that drops a connection gets the step tried again inside the run; a
# dg.Failure(allow_retries=False) (nothing left to ingest) bypasses it.
TRANSIENT_RETRIES = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL)


def build_uploads_asset(upload_type: UploadType) -> dg.AssetsDefinition:
    key = dg.AssetKey(upload_type.table)

    @dg.asset(
        key=key,
        partitions_def=upload_partitions(upload_type.name),
        group_name=INTAKE_GROUP,
        owners=list(upload_type.owners),
        kinds={"sftp", "pandas"},
        tags={"collab/pattern": "intake"},
        retry_policy=TRANSIENT_RETRIES,
        check_specs=[
            dg.AssetCheckSpec(
                UPLOAD_ACCEPTED,
                asset=key,
                description="The upload passed validation; if not, the reasons the uploader was given.",
            )
        ],
        description=f"{upload_type.description} One partition per uploaded file; invalid files are "
        "quarantined with a report the uploader can read, and fail the upload_accepted check.",
    )
    def _uploads(context: dg.AssetExecutionContext, landing_zone: LandingZone, warehouse: Warehouse):
        key = context.partition_key
        user = uploader_of(key)
        record = name_record(key)
        staged = [
            f for f in landing_zone.list(user, "staging") if f.name.startswith(f"{key}__") or f.name == record
        ]
        files = [f for f in staged if f.name != record and not f.name.endswith(SIDECAR_SUFFIXES)]
        if not files:
            # Another run of this upload finished it; running again would find the same nothing.
            raise dg.Failure(
                description=f"upload {key}: no file in {user}/staging of {landing_zone.describe()}; "
                f"it was already processed (see {user}/processed or {user}/quarantine) or never staged",
                allow_retries=False,
            )
        upload = files[0]
        # The upload moves last (see sensors.py): a crash midway leaves it in staging, to be recovered.
        staged.sort(key=lambda landed: landed.name == upload.name)
        original = split_staged_name(upload.name)[1]
        if any(f.name == record for f in staged):
            # The sensor replaced a name that was unsafe to store or to log; this is what was sent.
            original = decode_original(landing_zone.read(user, "staging", record).decode("utf-8"))
        # Exact in the record beside the file; as text in the warehouse and in Dagster's storage.
        original = as_text(original)
        data = landing_zone.read(user, "staging", upload.name)
        frame, report = validate_upload(data, original, upload_type)
        metadata = {
            "uploader": user,
            "file_name": original,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "landing_zone": landing_zone.describe(),
        }
        if not report.ok:
            return _refuse(context, landing_zone, staged, upload.name, report, metadata)
        frame.insert(0, "upload_id", key)
        frame.insert(1, "uploader", user)
        frame.insert(2, "file_name", original)
        frame["_loaded_at"] = datetime.now(UTC).replace(tzinfo=None)
        # Keyed by upload: a re-run after a crash replaces, never duplicates.
        # Indexed by upload: each run replaces one upload, and readers select by it.
        warehouse.replace(upload_type.table, frame, where={"upload_id": key}, layout=UPLOAD_LAYOUT)
        for landed in staged:
            landing_zone.move(user, "staging", landed.name, "processed")
        context.log.info(f"ingested {len(frame)} rows of {original!r} from {user}")
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "verdict": "ingested",
                "dagster/row_count": len(frame),
                "preview": dg.MetadataValue.md(frame.head(10).astype(str).to_markdown(index=False)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=UPLOAD_ACCEPTED,
                    passed=True,
                    description=f"{user}/{original!r} accepted: {len(frame)} row(s) ingested",
                )
            ],
        )

    return _uploads


def _refuse(
    context: dg.AssetExecutionContext,
    landing_zone: LandingZone,
    staged: list,
    upload_name: str,
    report: ValidationReport,
    metadata: dict,
) -> dg.MaterializeResult:
    user = uploader_of(context.partition_key)
    # The reason is written first, so a quarantined file is never without it.
    landing_zone.write_text(user, "quarantine", f"{upload_name}.error.txt", report.text())
    for landed in staged:
        landing_zone.move(user, "staging", landed.name, "quarantine")
    reasons = "\n".join(f"- {p}" for p in report.problems[:20])
    context.log.warning(f"upload {metadata['file_name']!r} from {user} was refused:\n{reasons}")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "verdict": "refused",
            "problems": len(report.problems),
            "reasons": dg.MetadataValue.md(reasons),
            "dagster/row_count": 0,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=UPLOAD_ACCEPTED,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{user}/{metadata['file_name']!r} refused: {_counted(report.problems)}",
                metadata={"problems": len(report.problems), "reasons": dg.MetadataValue.md(reasons)},
            )
        ],
    )


def _counted(problems: list[str]) -> str:
    return problems[0] + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else "")


def build_combined_asset(upload_type: UploadType) -> dg.AssetsDefinition:
    combined = upload_type.combined
    columns = upload_type.column_names
    key = list(upload_type.key)

    @dg.asset(
        name=combined.asset,
        group_name=INTAKE_GROUP,
        owners=list(combined.owners or upload_type.owners),
        kinds={"pandas", "sql"},
        tags={"collab/pattern": "intake"},
        deps=[combined.export, upload_type.table],
        description=combined.description
        or f"The `{combined.export}` export, with `{upload_type.name}` uploads taking precedence "
        f"for the same {', '.join(key)}.",
    )
    def _combined(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        parts = []
        if warehouse.has_table(combined.export):
            # An optional upload column the export lacks is empty for exported rows.
            exported = warehouse.read(combined.export).reindex(columns=columns)
            exported["source"] = "export"
            parts.append(exported)
        if warehouse.has_table(upload_type.table):
            uploaded = warehouse.read(upload_type.table, columns=[*columns, "_loaded_at"])
            uploaded = uploaded.sort_values("_loaded_at").drop(columns="_loaded_at")
            uploaded["source"] = "upload"
            parts.append(uploaded)
        if not parts:
            raise dg.Failure(
                description=f"neither the {combined.export} export nor any {upload_type.name} upload "
                "is in the warehouse yet",
            )
        frame = pd.concat(parts, ignore_index=True)
        for column in upload_type.column_list:
            if column.type in ("date", "datetime"):
                frame[column.name] = pd.to_datetime(frame[column.name])
        frame = frame.drop_duplicates(key, keep="last")
        warehouse.replace(combined.asset, frame)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(frame),
                "rows_from_uploads": int((frame["source"] == "upload").sum()),
            }
        )

    return _combined


def build_intake_assets(upload_types: list[UploadType]) -> list[dg.AssetsDefinition]:
    assets = [build_uploads_asset(t) for t in upload_types]
    return assets + [build_combined_asset(t) for t in upload_types if t.combined is not None]
