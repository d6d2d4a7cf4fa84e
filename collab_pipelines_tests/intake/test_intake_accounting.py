"""Every file an uploader sends ends in exactly one place, and only valid rows reach the warehouse."""

import time

import pandas as pd
import pytest

from collab_pipelines_tests.intake.conftest import GOOD_CSV, upload, verdict

BATCH = {
    "valid.csv": GOOD_CSV,
    "truncated.csv": GOOD_CSV[:-12],  # cut in the middle of the last row
    "truncated_copy.csv": GOOD_CSV[:-12],  # a copy of a refused upload
    "wrong-schema.csv": "station_name,when,temperature\nJFK,2013-01-01 01:00,39\n",
    "empty.csv": "",
    "latin1.csv": "origin,observed_at,temp\nJFK,2013-01-01 01:00,3°\n".encode("latin-1"),
    "valid_copy.csv": GOOD_CSV,  # a duplicate of an accepted upload
    "obs.csv.filepart": GOOD_CSV[:50],  # an upload abandoned under its temporary name
}
REFUSED = {"truncated.csv", "wrong-schema.csv", "empty.csv", "latin1.csv"}


def entries(landing_root, folder):
    path = landing_root / "alice" / folder
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_a_mixed_batch_is_accounted_for_exactly_once(connect, intake, landing_root, warehouse):
    alice = connect("alice")
    for name, content in BATCH.items():
        upload(alice, name, content)
    two_days_ago = time.time() - 2 * 86_400
    alice.utime("inbox/obs.csv.filepart", (two_days_ago, two_days_ago))
    with pytest.raises(OSError):  # a sub-folder is refused at the door...
        alice.mkdir("inbox/sub")
    planted = landing_root / "alice" / "inbox" / "sub"  # ...and one made on the shared disk is not ignored
    planted.mkdir()
    (planted / "nested.csv").write_text(GOOD_CSV)

    assert intake.tick().run_requests == []  # sizes and times seen once
    taken = intake.tick()
    assert sorted(r.tags["collab/file"] for r in taken.run_requests) == sorted(REFUSED | {"valid.csv"})
    verdicts = {r.tags["collab/file"]: verdict(intake.ingest(r.partition_key)) for r in taken.run_requests}
    assert {name: v[0] for name, v in verdicts.items()} == {
        **dict.fromkeys(REFUSED, "refused"),
        "valid.csv": "ingested",
    }
    assert all(passed == (name == "valid.csv") for name, (_, passed, _) in verdicts.items())
    assert "row 4: " in verdicts["truncated.csv"][2] and "cut short" in verdicts["truncated.csv"][2]

    # The copies waited for their originals' verdicts, and now follow them.
    assert intake.tick().run_requests == []
    assert intake.tick().run_requests == []
    assert entries(landing_root, "inbox") == entries(landing_root, "staging") == []

    processed, quarantined = entries(landing_root, "processed"), entries(landing_root, "quarantine")
    placed = [n for n in processed + quarantined if not n.endswith(".error.txt")]
    for name in [*BATCH, "sub"]:
        assert sum(n.endswith(f"__{name}") for n in placed) == 1, (name, placed)
    for name in placed:
        where = "processed" if name in processed else "quarantine"
        original = name.split("__", 1)[1]
        expected = (
            "quarantine"
            if original in REFUSED | {"truncated_copy.csv", "obs.csv.filepart", "sub"}
            else "processed"
        )
        assert where == expected, name
        if where == "quarantine":
            assert f"{name}.error.txt" in quarantined, name
    pointer = next(n for n in quarantined if n.endswith("__truncated_copy.csv.error.txt"))
    with alice.open(f"quarantine/{pointer}") as handle:
        assert "same content as an earlier upload that was refused" in handle.read().decode()
    for reason, name in (("unfinished upload", "__obs.csv.filepart"), ("not a file", "__sub")):
        report = next(n for n in quarantined if n.endswith(f"{name}.error.txt"))
        assert reason in (landing_root / "alice" / "quarantine" / report).read_text()

    rows = warehouse.read("weather_observations_uploads")
    expected = pd.read_csv(pd.io.common.StringIO(GOOD_CSV))
    assert len(rows) == len(expected) and set(rows["file_name"]) == {"valid.csv"}
    assert rows["temp"].tolist() == expected["temp"].tolist()
