"""The upload sensor: take complete uploads from the inboxes and request their ingestion.

Every entry of an inbox ends somewhere: a complete file is staged and ingested (or refused
by its run), a repeat of earlier content is set aside beside that one's verdict, and a
sub-folder or a temporary-named file left untouched too long is quarantined with a reason.
A failed ingestion is never re-requested here: Dagster's run retries handle transient
failures, so the sensor's requests never stack on top of them.
"""

import hashlib
import json
import time
import uuid
from collections import defaultdict

import dagster as dg

from collab_pipelines.intake.landing import LandedFile, LandingZone, LandingZoneError
from collab_pipelines.intake.names import encode_original, is_safe, safe_name
from collab_pipelines.intake.partitions import (
    is_staged_upload,
    name_record,
    split_staged_name,
    staged_name,
    upload_key,
    upload_partitions,
)
from collab_pipelines.intake.upload_types import UploadsFile
from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES

# Names SFTP clients and editors give files that are still being written.
TEMPORARY_SUFFIXES = (".filepart", ".part", ".partial", ".tmp", ".crdownload", ".swp")
SIDECAR_SUFFIXES = (".sha256", ".done")
UPLOAD_ACCEPTED = "upload_accepted"
# Names listed in one check description; its metadata lists every refused file.
_NAMES_LISTED = 20


# Files move sidecars first, the upload itself last: a crash in between leaves the upload where
# the next tick (inbox) or the recovery (staging) finds it, and its sidecars already ahead of it.


def is_temporary(name: str) -> bool:
    return name.startswith((".", "~")) or name.lower().endswith(TEMPORARY_SUFFIXES)


def uploads_asset_key(upload_type: str) -> dg.AssetKey:
    return dg.AssetKey(f"{upload_type}_uploads")


class _Tick:
    """One evaluation: what to stage, request, and remember."""

    def __init__(self, context: dg.SensorEvaluationContext, landing: LandingZone, uploads: UploadsFile):
        self.context, self.landing, self.uploads = context, landing, uploads
        self.pending = json.loads(context.cursor)["pending"] if context.cursor else {}
        self.still_pending: dict[str, list] = {}
        self.new_partitions: dict[str, list[str]] = defaultdict(list)
        self.requests: list[dg.RunRequest] = []
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.staged: list[str] = []
        self.refused: dict[str, list[dict]] = defaultdict(list)
        """Per upload type, the files refused before any run: uploader, file, quarantined_as, reason."""
        self.now = time.time()
        self.partitions: dict[str, set[str]] = {}

    def known(self, upload_type: str, key: str) -> bool:
        if upload_type not in self.partitions:
            # One read per tick: asking the instance per file costs a scan of every partition each time.
            name = upload_partitions(upload_type).name
            self.partitions[upload_type] = set(self.context.instance.get_dynamic_partitions(name))
        return key in self.new_partitions[upload_type] or key in self.partitions[upload_type]

    def request(self, upload_type: str, key: str, user: str, original: str, run_key: str) -> None:
        self.requests.append(
            dg.RunRequest(
                run_key=run_key,
                partition_key=key,
                asset_selection=[uploads_asset_key(upload_type)],
                # A step that failed after the asset's own retry policy would fail again (the
                # file is gone, or the verdict is already given); a lost worker is still retried.
                tags={
                    "collab/uploader": user,
                    "collab/file": safe_name(original),
                    **NO_RETRY_OF_STEP_FAILURES,
                },
            )
        )

    def recover_staged(self, user: str, upload_type: str) -> None:
        """Files left in staging by a crash: request the ones no run has decided."""
        staged = [
            f
            for f in self.landing.list(user, "staging")
            if is_staged_upload(f.name) and not f.name.endswith(SIDECAR_SUFFIXES)
        ]
        for landed in staged:
            key, original = split_staged_name(landed.name)
            if not self.known(upload_type, key):
                # Staged, but the tick's result (partition and request) was never saved.
                self.new_partitions[upload_type].append(key)
                self.request(upload_type, key, user, original, run_key=key)
                self.notes.append(f"recovered {user}/staging/{landed.name!r}")
                continue
            runs = self.context.instance.get_runs(
                filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=1
            )
            if not runs:
                self.request(upload_type, key, user, original, run_key=key)
            elif not runs[0].is_finished:
                continue  # its ingestion is queued or running
            elif runs[0].status == dg.DagsterRunStatus.SUCCESS:
                # The run loaded the rows, then stopped before the last move: finish it, once.
                self.request(upload_type, key, user, original, run_key=f"{key}:after-{runs[0].run_id}")
                self.notes.append(
                    f"finishing {user}/staging/{landed.name!r} (run {runs[0].run_id} stopped midway)"
                )
            else:
                self.errors.append(
                    f"{user}/staging/{landed.name!r}: its ingestion failed in run {runs[0].run_id}; run retries "
                    "re-run a transient failure, otherwise re-execute that run once the cause is fixed"
                )

    def take_inbox(self, user: str, upload_type: str) -> None:
        files, others = self.landing.scan(user, "inbox")
        for name in others:
            self.quarantine_entry(
                user,
                upload_type,
                name,
                "it is not a file (a folder or a link); only files directly in inbox/ are taken",
            )
        names = {f.name for f in files}
        for landed in files:
            if is_temporary(landed.name):
                hours = (self.now - landed.mtime) / 3600
                if hours >= self.uploads.abandoned_after_hours:
                    self.quarantine_entry(
                        user,
                        upload_type,
                        landed.name,
                        f"its name marks an unfinished upload, untouched for {hours:.0f} h",
                    )
                continue
            if landed.name.endswith(SIDECAR_SUFFIXES):
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
                self.errors.append(f"{user}/inbox/{landed.name!r}: {error}")

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
                reason = (
                    f"its SHA-256 is {digest}, but {checksum} says {expected[0] if expected else '(empty)'}"
                )
                self.quarantine_entry(user, upload_type, landed.name, reason, sidecars)
                return
        key = upload_key(user, digest)
        if self.known(upload_type, key):
            self.set_aside_duplicate(landed, sidecars, key, upload_type)
            return
        self.move_out(user, landed.name, sidecars, "staging", key)
        self.new_partitions[upload_type].append(key)
        self.request(upload_type, key, user, landed.name, run_key=key)
        self.notes.append(f"staged {user}/inbox/{landed.name!r} as {key}")
        self.staged.append(f"{user}/inbox/{landed.name!r}")

    def move_out(self, user: str, name: str, sidecars: list[str], target: str, prefix: str) -> str:
        """Move an inbox entry and its sidecars to `target` as `<prefix>__<safe name>`; returns that name.

        A name that is not safe (too long once prefixed, control characters) is replaced, and
        the original is written first to `<prefix>.name` beside it.
        """
        safe = safe_name(name)
        if not is_safe(name):
            self.landing.write_text(user, target, name_record(prefix), encode_original(name))
        # Sidecars keep their suffix after the upload's safe name, so they still pair with it.
        for entry in [*sidecars, name]:
            self.landing.move(user, "inbox", entry, target, staged_name(prefix, safe + entry[len(name) :]))
        return staged_name(prefix, safe)

    def set_aside_duplicate(
        self, landed: LandedFile, sidecars: list[str], key: str, upload_type: str
    ) -> None:
        """Same content as an earlier upload: it goes where that one went, and is not ingested."""
        user = landed.user
        # Only on a duplicate, so an ordinary tick's cost does not grow with the archive.
        earlier_report = next(
            (
                f.name
                for f in self.landing.list(user, "quarantine")
                if f.name.startswith(f"{key}__") and f.name.endswith(".error.txt")
            ),
            None,
        )
        if earlier_report is None and not any(
            f.name.startswith(f"{key}__") for f in self.landing.list(user, "processed")
        ):
            # The earlier upload is still staged: its verdict decides where this copy goes.
            self.notes.append(f"{user}/inbox/{landed.name!r} repeats upload {key}; waiting for its verdict")
            return
        target = "quarantine" if earlier_report else "processed"
        # A token per set-aside file: the same content may arrive any number of times.
        prefix = f"duplicate-{uuid.uuid4().hex[:8]}-of-{key}"
        if earlier_report:
            reason = f"it has the same content as an earlier upload that was refused; see quarantine/{earlier_report}"
            self.quarantine_entry(user, upload_type, landed.name, reason, sidecars, prefix)
            return
        self.move_out(user, landed.name, sidecars, target, prefix)
        self.notes.append(f"{user}/inbox/{landed.name!r} repeats upload {key}; not ingested again ({target})")

    def quarantine_entry(
        self,
        user: str,
        upload_type: str,
        name: str,
        reason: str,
        sidecars: list[str] = (),
        prefix: str | None = None,
    ) -> None:
        """Refuse an inbox entry before any run: the reason goes beside it, for the uploader."""
        prefix = prefix or f"rejected-{uuid.uuid4().hex[:8]}"
        quarantined = staged_name(prefix, safe_name(name))
        try:
            # The reason first, so a quarantined file is never without it.
            self.landing.write_text(
                user,
                "quarantine",
                f"{quarantined}.error.txt",
                f"Upload {name!r} was not ingested: {reason}.\n",
            )
            self.move_out(user, name, sidecars, "quarantine", prefix)
        except (LandingZoneError, OSError) as error:
            self.errors.append(f"{user}/inbox/{name!r}: {reason}, and it could not be quarantined: {error}")
            return
        self.notes.append(f"quarantined {user}/inbox/{name!r} as {quarantined!r}: {reason}")
        self.refused[upload_type].append(
            {"uploader": user, "file": name, "quarantined_as": quarantined, "reason": reason}
        )

    def summary(self) -> str:
        """One line for the tick: every file it took or refused, names escaped."""
        refused = [r for rows in self.refused.values() for r in rows]
        parts = [f"{len(self.staged)} staged" + (f" ({', '.join(self.staged)})" if self.staged else "")]
        parts.append(f"{len(refused)} refused" + (f" ({_listed(refused)})" if refused else ""))
        parts.append(f"{len(self.still_pending)} still being written")
        if self.errors:
            parts.append(f"{len(self.errors)} error(s), each logged below: those files wait in place")
        return "tick: " + "; ".join(parts)

    def refusal_checks(self) -> list[dg.AssetCheckEvaluation]:
        """A failed upload_accepted per upload type whose files this tick refused, naming each one.

        These files never reach a run, so without this the check would go on saying the last
        ingested upload passed.
        """
        return [
            dg.AssetCheckEvaluation(
                asset_key=uploads_asset_key(upload_type),
                check_name=UPLOAD_ACCEPTED,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{len(rows)} file(s) refused before ingestion: {_listed(rows)}",
                metadata={"refused": len(rows), "files": dg.MetadataValue.json(rows)},
            )
            for upload_type, rows in self.refused.items()
        ]


def _listed(refused: list[dict]) -> str:
    shown = [f"{r['uploader']}/inbox/{r['file']!r} ({r['reason']})" for r in refused[:_NAMES_LISTED]]
    more = len(refused) - _NAMES_LISTED
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def build_upload_sensor(uploads: UploadsFile) -> dg.SensorDefinition:
    @dg.sensor(
        name="upload_sensor",
        asset_selection=[uploads_asset_key(name) for name in uploads.upload_types],
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Takes complete uploads from every uploader's inbox (size and mtime stable "
        "across two ticks, or a .done/.sha256 sidecar), moves them to staging and requests one "
        "ingestion per upload. Repeated content is recognised and not ingested twice; folders and "
        "abandoned temporary files are quarantined with a reason.",
    )
    def upload_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZone):
        tick = _Tick(context, landing_zone, uploads)
        for user in landing_zone.users():
            upload_type = uploads.type_for(user)
            if upload_type is None:
                tick.errors.append(
                    f"uploader {user!r}: no upload type lists them and there is no default_upload_type; "
                    f"their files wait in the inbox (upload types: {', '.join(uploads.upload_types)})"
                )
                continue
            tick.recover_staged(user, upload_type.name)
            tick.take_inbox(user, upload_type.name)
        context.log.info(tick.summary())
        for note in tick.notes:
            context.log.info(note)
        for error in tick.errors:
            context.log.error(error)
        return dg.SensorResult(
            run_requests=tick.requests,
            asset_events=tick.refusal_checks(),
            dynamic_partitions_requests=[
                upload_partitions(name).build_add_request(keys)
                for name, keys in tick.new_partitions.items()
                if keys
            ],
            cursor=json.dumps({"pending": tick.still_pending}),
        )

    return upload_sensor
