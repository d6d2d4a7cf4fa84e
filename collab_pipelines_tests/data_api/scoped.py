"""Tokens with a scope, issued into a running deployment's tokens file, and its audit log read back."""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from collab_pipelines.data_api.scope import Scope
from collab_pipelines.data_api.tokens import issue_token

# Datasets the scoped tokens may read: a glob and a name. `weather` is filled, `air*` names
# two filled dimensions (airlines, airports); every other dataset, evaluation_* included, is not.
SCOPED_DATASETS = ("air*", "weather")


@dataclass(frozen=True)
class Issued:
    name: str
    token: str


def issue(api, prefix: str, scope: Scope, expires: datetime | None = None) -> Issued:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    token, _path = issue_token(name, api.deployment.state_dir / "api_tokens", scope, expires)
    return Issued(name, token)


def audit_records(api, token_name: str) -> list[dict]:
    path = api.deployment.state_dir / "api_audit.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["token"] == token_name]


def names_read(records: list[dict]) -> set[str]:
    """Every dataset, suite and report key an audit record says was shown."""
    names: set[str] = set()
    for record in records:
        names.update(filter(None, (record.get("dataset"), record.get("report"))))
        names.update(record.get("datasets", ()))
        names.update(record.get("suites", ()))
    return names
