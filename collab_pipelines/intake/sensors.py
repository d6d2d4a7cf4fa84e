"""The upload sensor: take complete uploads from the inboxes and request their ingestion."""

import hashlib
import json
import uuid
from collections import defaultdict

import dagster as dg

from collab_pipelines.intake.landing import LandedFile, LandingZone, LandingZoneError
from collab_pipelines.intake.partitions import (
    split_staged_name,
    staged_name,
    upload_key,
    upload_partitions,
)
from collab_pipelines.intake.schemas import UPLOAD_TYPES

# Names SFTP clients and editors give files that are still being written.
TEMPORARY_SUFFIXES = (".filepart", ".part", ".partial", ".tmp", ".crdownload", ".swp")
SIDECAR_SUFFIXES = (".sha256", ".done")
MAX_INGESTION_ATTEMPTS = 3


# Files move sidecars first, the upload itself last: a crash in between leaves the upload where
# the next tick (inbox) or the recovery (staging) finds it, and its sidecars already ahead of it.


def is_temporary(name: str) -> bool:
    return name.startswith((".", "~")) or name.lower().endswith(TEMPORARY_SUFFIXES)


def uploads_asset_key(upload_type: str) -> dg.AssetKey:
    return dg.AssetKey(f"{upload_type}_uploads")


class _Tick:
    """One evaluation: what to stage, request, and remember."""

    def __init__(self, context: dg.SensorEvaluationContext, landing: LandingZone):
        self.context, self.landing = context, landing
        self.pending = json.loads(context.cursor)["pending"] if context.cursor else {}
        self.still_pending: dict[str, list] = {}
        self.new_partitions: dict[str, list[str]] = defaultdict(list)
        self.requests: list[dg.RunRequest] = []
        self.notes: list[str] = []
        self.errors: list[str] = []

    def known(self, upload_type: str, key: str) -> bool:
        partitions = upload_partitions[upload_type]
        return key in self.new_partitions[upload_type] or self.context.instance.has_dynamic_partition(
            partitions.name, key
        )

    def request(self, upload_type: str, key: str, user: str, original: str, run_key: str) -> None:
        self.requests.append(
            dg.RunRequest(
                run_key=run_key,
                partition_key=key,
                asset_selection=[uploads_asset_key(upload_type)],
                tags={"collab/uploader": user, "collab/file": original[:200]},
            )
        )

    def recover_staged(self, user: str, upload_type: str) -> None:
        """Files left in staging by a crash: request them again, or finish a finished one."""
        staged = [f for f in self.landing.list(user, "staging") if not f.name.endswith(SIDECAR_SUFFIXES)]
        for landed in staged:
            key, original = split_staged_name(landed.name)
            if not self.known(upload_type, key):
                self.new_partitions[upload_type].append(key)
                self.request(upload_type, key, user, original, run_key=key)
                self.notes.append(f"recovered {user}/staging/{landed.name}")
                continue
            runs = self.context.instance.get_runs(
                filters=dg.RunsFilter(tags={"dagster/partition": key}, job_name=None)
            )
            if any(not run.is_finished for run in runs):
                continue  # its ingestion is queued or running
            failed = [run for run in runs if run.status != dg.DagsterRunStatus.SUCCESS]
            if len(failed) < MAX_INGESTION_ATTEMPTS:
                self.request(upload_type, key, user, original, run_key=f"{key}:attempt-{len(failed) + 1}")
                self.notes.append(f"retrying {user}/staging/{landed.name} (attempt {len(failed) + 1})")

    def take_inbox(self, user: str, upload_type: str) -> None:
        files = self.landing.list(user, "inbox")
        names = {f.name for f in files}
        for landed in files:
            if is_temporary(landed.name) or landed.name.endswith(SIDECAR_SUFFIXES):
                continue
            sidecars = [landed.name + s for s in SIDECAR_SUFFIXES if landed.name + s in names]
            marker = f"{user}/{landed.name}"
            if not sidecars and self.pending.get(marker) != [landed.size, landed.mtime]:
                # Size and mtime must hold still across two ticks before a file counts as complete.
                self.still_pending[marker] = [landed.size, landed.mtime]
                continue
            try:
                self.stage(landed, sidecars, upload_type)
            except (LandingZoneError, OSError) as error:
                # One unreadable or immovable file must not hold back everyone else's uploads;
                # it stays in the inbox and is tried again on the next tick.
                self.errors.append(f"{user}/inbox/{landed.name}: {error}")

    def stage(self, landed: LandedFile, sidecars: list[str], upload_type: str) -> None:
        user = landed.user
        digest = hashlib.sha256(self.landing.read(user, "inbox", landed.name)).hexdigest()
        checksum = landed.name + ".sha256"
        if checksum in sidecars:
            expected = self.landing.read(user, "inbox", checksum).decode("utf-8", "replace").split()
            if not expected or expected[0].lower() != digest:
                marker = f"{user}/{landed.name}"
                if self.pending.get(marker) != [landed.size, landed.mtime]:
                    self.still_pending[marker] = [landed.size, landed.mtime]  # maybe still uploading
                    return
                self.reject(
                    landed,
                    sidecars,
                    f"its SHA-256 is {digest}, but {checksum} says {expected[0] if expected else '(empty)'}",
                )
                return
        key = upload_key(user, digest)
        if self.known(upload_type, key):
            self.set_aside_duplicate(landed, sidecars, key)
            return
        for name in [*sidecars, landed.name]:
            self.landing.move(user, "inbox", name, "staging", staged_name(key, name))
        self.new_partitions[upload_type].append(key)
        self.request(upload_type, key, user, landed.name, run_key=key)
        self.notes.append(f"staged {user}/inbox/{landed.name} as {key}")

    def set_aside_duplicate(self, landed: LandedFile, sidecars: list[str], key: str) -> None:
        """Same content as an earlier upload: it goes where that one went, and is not ingested."""
        user = landed.user
        # Only on a duplicate, so listing quarantine does not add to an ordinary tick's cost.
        earlier_report = next(
            (
                f.name
                for f in self.landing.list(user, "quarantine")
                if f.name.startswith(f"{key}__") and f.name.endswith(".error.txt")
            ),
            None,
        )
        target = "quarantine" if earlier_report else "processed"
        # A token per set-aside file: the same content may arrive any number of times.
        prefix = f"duplicate-{uuid.uuid4().hex[:8]}-of-{key}"
        if earlier_report:
            self.landing.write_text(
                user,
                "quarantine",
                f"{prefix}__{landed.name}.error.txt",
                f"Upload {landed.name!r} was not ingested: it has the same content as an earlier upload "
                f"that was refused; see quarantine/{earlier_report} for why.\n",
            )
        for name in [*sidecars, landed.name]:
            self.landing.move(user, "inbox", name, target, f"{prefix}__{name}")
        self.notes.append(f"{user}/inbox/{landed.name} repeats upload {key}; not ingested again ({target})")

    def reject(self, landed: LandedFile, sidecars: list[str], reason: str) -> None:
        user = landed.user
        stamp = f"rejected-{uuid.uuid4().hex[:8]}"
        self.landing.write_text(
            user,
            "quarantine",
            f"{stamp}__{landed.name}.error.txt",
            f"Upload {landed.name!r} was not ingested: {reason}.\n",
        )
        for name in [*sidecars, landed.name]:
            self.landing.move(user, "inbox", name, "quarantine", f"{stamp}__{name}")
        self.notes.append(f"quarantined {user}/inbox/{landed.name}: {reason}")


def build_upload_sensor() -> dg.SensorDefinition:
    @dg.sensor(
        name="upload_sensor",
        asset_selection=[uploads_asset_key(name) for name in UPLOAD_TYPES],
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Takes complete uploads from every uploader's inbox (size and mtime stable "
        "across two ticks, or a .done/.sha256 sidecar), moves them to staging and requests one "
        "ingestion per upload. Repeated content is recognised and not ingested twice.",
    )
    def upload_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZone):
        tick = _Tick(context, landing_zone)
        for user in landing_zone.users():
            upload_type = landing_zone.upload_type_for(user)
            if upload_type not in UPLOAD_TYPES:
                raise ValueError(
                    f"uploader {user!r}: unknown upload type {upload_type!r}; known: {sorted(UPLOAD_TYPES)}"
                )
            tick.recover_staged(user, upload_type)
            tick.take_inbox(user, upload_type)
        for note in tick.notes:
            context.log.info(note)
        for error in tick.errors:
            context.log.error(f"upload not taken, will retry: {error}")
        return dg.SensorResult(
            run_requests=tick.requests,
            dynamic_partitions_requests=[
                upload_partitions[name].build_add_request(keys)
                for name, keys in tick.new_partitions.items()
                if keys
            ],
            cursor=json.dumps({"pending": tick.still_pending}),
        )

    return upload_sensor
