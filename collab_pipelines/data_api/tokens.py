"""Issuing, listing and revoking tokens in the tokens file, safely beside a running server.

Every change holds an exclusive lock on `<tokens file>.lock`, so two administrators (or an
issue and a revocation) never lose each other's line. A revocation rewrites the file through
a temporary file and a rename: the server, which re-reads the file when it changes, sees
either the old file or the new one, never half of it.
"""

import fcntl
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collab_pipelines.data_api.auth import (
    NAME,
    TokenConfigError,
    TokenEntry,
    default_tokens_file,
    hash_token,
    read_tokens_file,
    utc_text,
)
from collab_pipelines.data_api.scope import FULL, Scope

_SPAN = re.compile(r"^(\d{1,5})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, ago: bool = False, now: datetime | None = None) -> datetime:
    """`30d`, `12h`, `2w`, `90m` from now (or, with `ago`, before now), or a UTC date or time.

    A date alone is midnight UTC; a time without an offset is taken as UTC.
    """
    now = now or datetime.now(UTC)
    span = _SPAN.match(text.strip())
    if span:
        delta = timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
        return now - delta if ago else now + delta
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TokenConfigError(
            f"{text!r} is neither a span (30d, 12h, 2w, 90m) nor a date or time (2027-01-31, 2027-01-31T09:00Z)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def issue_token(
    name: str, path: Path | None = None, scope: Scope = FULL, expires: datetime | None = None
) -> tuple[str, Path]:
    """A new random token; its entry is appended to the tokens file, the token is returned once.

    Refused while a token of that name is in force (see `replace_token`).
    """
    token, path, _replaced = _issue(name, path, scope, expires, replace=False)
    return token, path


def replace_token(
    name: str, path: Path | None = None, scope: Scope = FULL, expires: datetime | None = None
) -> tuple[str, Path, int]:
    """A new token for `name`; every token of that name still in force is revoked in the same change.

    Returns the token, the file and how many tokens it revoked. One lock and one rename: the
    server never sees both in force, nor neither.
    """
    return _issue(name, path, scope, expires, replace=True)


def _issue(
    name: str, path: Path | None, scope: Scope, expires: datetime | None, *, replace: bool
) -> tuple[str, Path, int]:
    if not NAME.match(name):
        raise TokenConfigError(f"token name {name!r} must be 1-64 letters, digits or ._@+-")
    now = datetime.now(UTC)
    if expires is not None and expires <= now:
        raise TokenConfigError(f"--expires {utc_text(expires)} is already past")
    path = path or default_tokens_file()
    token = secrets.token_urlsafe(32)
    entry = TokenEntry(
        name=name,
        sha256=hash_token(token),
        datasets=scope.datasets,
        suites=scope.suites,
        reports=scope.reports,
        expires=expires,
    )
    with _locked(path):
        # Names are what the audit log records: two tokens in force under one name could not
        # be told apart there.
        in_force = {
            n for n, held in read_tokens_file(path) if held.name == name and held.refusal(now) is None
        }
        if in_force and not replace:
            raise TokenConfigError(
                f"{path}:{min(in_force)}: a token named {name!r} is in force; "
                f"revoke it (collab-data-api tokens revoke {name}) or choose another name"
            )
        if in_force:
            _rewrite(path, in_force, now, add=entry.line())
        else:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(descriptor, "a") as handle:
                handle.write(entry.line() + "\n")
    return token, path, len(in_force)


def list_tokens(path: Path | None = None) -> list[TokenEntry]:
    return [entry for _number, entry in read_tokens_file(path or default_tokens_file())]


def revoke_token(name: str, path: Path | None = None) -> int:
    """Marks every unrevoked token of `name` revoked now; returns how many there were."""
    path = path or default_tokens_file()
    with _locked(path):
        numbers = {n for n, entry in read_tokens_file(path) if entry.name == name and entry.revoked is None}
        if not numbers:
            raise TokenConfigError(f"{path}: no unrevoked token is named {name!r}")
        _rewrite(path, numbers, datetime.now(UTC))
    return len(numbers)


def _rewrite(path: Path, revoked: set[int], now: datetime, add: str | None = None) -> None:
    """The file with lines `revoked` (numbers) marked revoked and `add` appended, replaced whole."""
    stamp = f"revoked={utc_text(now)}"
    lines = path.read_text().splitlines()
    for number in revoked:
        content, hash_mark, comment = lines[number - 1].partition("#")
        lines[number - 1] = f"{content.rstrip()} {stamp}" + (f" #{comment}" if hash_mark else "")
    if add is not None:
        lines.append(add)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
