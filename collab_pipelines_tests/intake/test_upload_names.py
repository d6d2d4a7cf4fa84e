"""Any name an uploader can give ends ingested or quarantined, stored safely, reported, and logged
on one line."""

import json

import dagster as dg

from collab_pipelines.intake.names import MAX_SAFE_BYTES
from collab_pipelines.intake.sensors import UPLOAD_ACCEPTED
from collab_pipelines_tests.intake.conftest import GOOD_CSV, upload, verdict

LONG = "x" * 250 + ".csv"  # 254 characters: 278 once staged as "<key>__<name>"
FORGED = "obs.csv\n2026-01-01 00:00:00 +0000 - dagster - INFO - all uploads ingested\n.csv"
ESCAPES = "\x1b[31mred\x07\tbell\u202ecsv.csv"
BAD_CSV = "origin,observed_at,temp\nJFK,2013-01-01 01:00,warm\n"


def rows_with(csv: str, hour: int) -> str:
    """Good content, distinct per file, so no upload repeats another."""
    return csv.replace("2013-01-01 01:00", f"2013-01-01 {hour:02d}:00")


def names_in(landing_root, folder: str) -> list[str]:
    path = landing_root / "alice" / folder
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_any_name_ends_ingested_or_quarantined_with_its_original_recorded(
    connect, intake, landing_root, warehouse, capsys
):
    alice = connect("alice")
    upload(alice, LONG, rows_with(GOOD_CSV, 3))
    upload(alice, FORGED, rows_with(GOOD_CSV, 4))
    upload(alice, ESCAPES, BAD_CSV)
    upload(alice, ESCAPES + ".done", "")
    # A folder planted on the shared disk, with a name as long and as hostile as can be.
    planted = landing_root / "alice" / "inbox" / ("sub\n" + "y" * 240)
    planted.mkdir()

    first = intake.tick()
    assert len(first.run_requests) == 1  # the .done sidecar made that one complete at once
    results = intake.run_all(first)
    taken = intake.tick()
    assert names_in(landing_root, "inbox") == []  # nothing left behind, not even the 254-character name
    assert len(taken.run_requests) == 2
    verdicts = {}
    for result in [*results, *intake.run_all(taken)]:
        file_name = (
            result.asset_materializations_for_node("weather_observations_uploads")[0]
            .metadata["file_name"]
            .value
        )
        verdicts[file_name] = verdict(result)
    # The run knows each file by its original name, and its check names it.
    assert {name: v[:2] for name, v in verdicts.items()} == {
        LONG: ("ingested", True),
        FORGED: ("ingested", True),
        ESCAPES: ("refused", False),
    }
    assert repr(ESCAPES) in verdicts[ESCAPES][2] and "'warm' is not a number" in verdicts[ESCAPES][2]
    assert repr(LONG) in verdicts[LONG][2] and "3 row(s)" in verdicts[LONG][2]
    assert set(warehouse.read("weather_observations_uploads")["file_name"]) == {LONG, FORGED}

    # Every name stored is printable and short; each renamed file has its original beside it.
    stored = names_in(landing_root, "processed") + names_in(landing_root, "quarantine")
    for name in stored:
        assert name.isprintable() and len(name.encode()) <= MAX_SAFE_BYTES + 60, name
    records = {}
    for folder in ("processed", "quarantine"):
        for name in names_in(landing_root, folder):
            if name.endswith(".name"):
                text = (landing_root / "alice" / folder / name).read_text()
                records[json.loads(text)["original_name"]] = (folder, name[: -len(".name")])
    assert set(records) == {LONG, FORGED, ESCAPES, planted.name}
    assert records[LONG][0] == records[FORGED][0] == "processed"
    assert records[ESCAPES][0] == records[planted.name][0] == "quarantine"
    for original, (folder, prefix) in records.items():
        placed = [n for n in names_in(landing_root, folder) if n.startswith(f"{prefix}__")]
        assert placed, original
        if folder == "quarantine":
            # The uploader reads why over SFTP, under the safe name, and it quotes what they sent.
            report = next(n for n in placed if n.endswith(".error.txt"))
            with alice.open(f"quarantine/{report}") as handle:
                assert repr(original) in handle.read().decode()
    # The sidecar stayed paired with its upload under the safe name.
    escaped = records[ESCAPES][1]
    assert (
        sum(n.startswith(escaped) and n.endswith(".csv.done") for n in names_in(landing_root, "quarantine"))
        == 1
    )

    # The folder never reached a run: the sensor's own check verdict counts and names it.
    refusals = [
        e for e in [*first.asset_events, *taken.asset_events] if isinstance(e, dg.AssetCheckEvaluation)
    ]
    assert [(e.check_name, e.passed, e.severity) for e in refusals] == [
        (UPLOAD_ACCEPTED, False, dg.AssetCheckSeverity.ERROR)
    ]
    assert refusals[0].description.startswith("1 file(s) refused before ingestion: ")
    assert repr(planted.name) in refusals[0].description and "not a file" in refusals[0].description
    assert refusals[0].metadata["files"].value[0]["file"] == planted.name

    # No name forged a log line: each was logged quoted, on the line that reported it.
    # Dagster's log lines go to stderr, one line per message.
    lines = capsys.readouterr().err.splitlines()
    assert any(repr(FORGED) in line for line in lines)
    assert not any(line.startswith("2026-01-01 00:00:00") for line in lines)
    assert not any("\x1b" in line or "\x07" in line for line in lines)
    summary = next(line for line in lines if "tick: " in line and "refused" in line and "1 refused" in line)
    assert repr(planted.name) in summary


def test_a_refused_tick_is_reported_even_when_another_file_passes(connect, intake, landing_root):
    alice = connect("alice")
    upload(alice, "good.csv", GOOD_CSV)
    upload(alice, "good.csv.done", "")
    upload(alice, "obs.csv.sha256", "0" * 64 + "\n")
    upload(alice, "obs.csv", rows_with(GOOD_CSV, 5))
    tick = intake.tick()
    assert tick.asset_events == []  # the checksum may still be arriving
    [request] = tick.run_requests
    assert verdict(intake.ingest(request.partition_key, request.tags))[:2] == ("ingested", True)
    refused = intake.tick()
    [check] = refused.asset_events
    assert not check.passed and check.description.startswith("1 file(s) refused")
    assert "'obs.csv'" in check.description and "SHA-256" in check.description
    # Reported through the instance as the daemon does, the check's latest verdict is the refusal.
    intake.instance.report_runless_asset_event(check)
    key = dg.AssetCheckKey(dg.AssetKey("weather_observations_uploads"), UPLOAD_ACCEPTED)
    latest = intake.instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert latest.status.value == "FAILED"
    assert names_in(landing_root, "inbox") == []


def test_a_name_that_is_not_utf8_is_ingested_under_a_safe_name(connect, intake, landing_root, warehouse):
    alice = connect("alice")
    # paramiko sends a bytes path as it is: the server stores the bytes the client sent.
    with alice.open(b"inbox/caf\xe9.csv", "wb") as handle:
        handle.write(rows_with(GOOD_CSV, 6).encode())
    with alice.open(b"inbox/caf\xe9.csv.done", "wb"):
        pass
    [request] = intake.tick().run_requests
    result = intake.ingest(request.partition_key, request.tags)
    assert verdict(result)[:2] == ("ingested", True)
    # The warehouse holds text: the byte that is no character shows as U+FFFD there...
    assert set(warehouse.read("weather_observations_uploads")["file_name"]) == {"caf\ufffd.csv"}
    # ...and the record beside the file keeps the exact name (the byte, as os.fsdecode reads it).
    [record] = [n for n in names_in(landing_root, "processed") if n.endswith(".name")]
    original = json.loads((landing_root / "alice" / "processed" / record).read_text())["original_name"]
    assert original == "caf\udce9.csv"
    assert all(n.isprintable() for n in names_in(landing_root, "processed"))


def test_a_safe_name_keeps_the_extension_and_fits_any_prefix():
    from collab_pipelines.intake.names import is_safe, safe_name

    long_accented = "é" * 125 + ".parquet"  # 258 bytes in UTF-8
    safe = safe_name(long_accented)
    assert safe.endswith(".parquet") and len(safe.encode()) <= MAX_SAFE_BYTES and safe.isprintable()
    assert safe_name("a" * 200 + ".csv") != safe_name("a" * 200 + "b.csv")  # a shared beginning stays apart
    assert safe_name("line\nbreak\u2028.csv") == "line_break_.csv"
    assert is_safe("observations 2013-01.csv") and not is_safe("x\x00y")
