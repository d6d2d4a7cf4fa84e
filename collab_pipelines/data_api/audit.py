"""The audit log: one JSON line per read, naming the token by name, never the token or its hash.

    {"at": "2026-11-30T17:02:11.123456Z", "token": "bob", "read": "rows", "dataset": "flights",
     "partition": "2013-01-05", "rows": 989}

`read` is one of `datasets` (the list: `datasets` names what it showed), `dataset`, `rows`,
`evaluations` (`commit`, and the `suites` shown), `champion` (the `suites` read), `report` (`report` and `partition`) and
`openapi` (`datasets` it described). The file is `$COLLAB_API_AUDIT_LOG`, default
`<state dir>/api_audit.jsonl`. Each record is one `write` to a file opened with O_APPEND, which
the kernel places at the end whole: several server workers append without a lock and without
interleaving.
"""

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from collab_pipelines import settings

AUDIT_LOG_ENV = "COLLAB_API_AUDIT_LOG"


def default_audit_log() -> Path:
    return Path(os.environ.get(AUDIT_LOG_ENV) or settings.state_dir() / "api_audit.jsonl")


class AuditLog:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, token: str, read: str, **what) -> None:
        entry = {"at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "token": token, "read": read}
        entry.update((key, value) for key, value in what.items() if value is not None)
        line = (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode()
        # Opened per record: a rotated or deleted log is recreated, not written into the void.
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)


def read_audit_log(
    path: Path, *, token: str | None = None, since: datetime | None = None, dataset: str | None = None
) -> Iterator[dict]:
    """The records, oldest first, that match every filter given."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON record ({error.msg})") from None
            if token is not None and entry.get("token") != token:
                continue
            if since is not None and datetime.fromisoformat(entry["at"]) < since:
                continue
            if (
                dataset is not None
                and dataset != entry.get("dataset")
                and dataset not in entry.get("datasets", ())
            ):
                continue
            yield entry
