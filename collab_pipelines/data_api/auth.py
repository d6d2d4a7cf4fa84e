"""Bearer tokens, stored only as SHA-256 hashes, each with what it may read and until when.

Tokens come from `$COLLAB_API_TOKENS` (comma-separated `name:sha256hex` entries, full access)
and from a tokens file (`$COLLAB_API_TOKENS_FILE`, default `<state dir>/api_tokens`), one token
a line:

    alice 3f2a...c9            # full access, as every line before scopes existed
    bob 9c1e...07 datasets=seattle_*,flights suites=rain reports=- expires=2027-01-31T09:00:00Z
    carol 5d4b...a1 revoked=2026-11-30T17:02:11Z

A scope key left out grants everything of its kind; `-` grants nothing. The server never sees a
token in the clear until a client presents one.
"""

import hashlib
import hmac
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationInfo, field_validator

from collab_pipelines import settings
from collab_pipelines.config import ConfigError, StrictModel, parse
from collab_pipelines.data_api.scope import EVERYTHING, Scope

log = logging.getLogger(__name__)
TOKENS_ENV = "COLLAB_API_TOKENS"
TOKENS_FILE_ENV = "COLLAB_API_TOKENS_FILE"
_HASH = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
# Dataset names, suite names and report keys, with fnmatch's * ? [ ] !; no comma, the separator.
_GLOB = re.compile(r"^[A-Za-z0-9_.@/*?\[\]!+-]{1,128}$")
SCOPE_KEYS = ("datasets", "suites", "reports")
TIME_KEYS = ("expires", "revoked")
NONE_GRANTED = "-"


class TokenConfigError(ConfigError):
    """A token entry is malformed; the message names its source and line."""


class TokenEntry(StrictModel):
    """One token: who holds it, the SHA-256 of the token (never the token), and its scope.

    The tokens file is a line format written by `collab-data-api token`, like an htpasswd
    file, so it has no JSON Schema for editors; each line is this model.
    """

    name: str
    sha256: str
    datasets: tuple[str, ...] = EVERYTHING
    suites: tuple[str, ...] = EVERYTHING
    reports: tuple[str, ...] = EVERYTHING
    expires: datetime | None = None
    revoked: datetime | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME.match(name):
            raise ValueError(f"token name {name!r} must be letters, digits or ._@+-")
        return name

    @field_validator("sha256")
    @classmethod
    def _digest(cls, digest: str, info: ValidationInfo) -> str:
        digest = digest.strip().lower()
        if not _HASH.match(digest):
            name = info.data.get("name", "the name")
            raise ValueError(f"{name!r} is not followed by a SHA-256 hex digest (64 hex digits)")
        return digest

    @field_validator(*SCOPE_KEYS)
    @classmethod
    def _globs(cls, globs: tuple[str, ...]) -> tuple[str, ...]:
        for glob in globs:
            if not _GLOB.match(glob):
                raise ValueError(f"{glob!r} is not a name or glob (letters, digits, ._@/+- and * ? [ ] !)")
        return globs

    @field_validator(*TIME_KEYS)
    @classmethod
    def _utc(cls, when: datetime | None) -> datetime | None:
        if when is None:
            return None
        if when.tzinfo is None:
            raise ValueError(f"{when.isoformat()} has no time zone; write UTC, e.g. 2027-01-31T09:00:00Z")
        return when.astimezone(UTC)

    @property
    def scope(self) -> Scope:
        return Scope(self.datasets, self.suites, self.reports)

    def refusal(self, now: datetime | None = None) -> str | None:
        """Why this token no longer opens anything, or None while it does."""
        now = now or datetime.now(UTC)
        if self.revoked is not None:
            return f"this token was revoked at {utc_text(self.revoked)}"
        if self.expires is not None and self.expires <= now:
            return f"this token expired at {utc_text(self.expires)}"
        return None

    def line(self) -> str:
        """The entry as one line of the tokens file."""
        fields = [self.name, self.sha256]
        if not self.scope.full:
            # Every scope key is written: the line says what it grants without a rule to recall.
            fields += [f"{key}={','.join(getattr(self, key)) or NONE_GRANTED}" for key in SCOPE_KEYS]
        fields += [f"{key}={utc_text(getattr(self, key))}" for key in TIME_KEYS if getattr(self, key)]
        return " ".join(fields)


def utc_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def default_tokens_file() -> Path:
    return Path(os.environ.get(TOKENS_FILE_ENV) or settings.state_dir() / "api_tokens")


def parse_line(line: str, where: str) -> TokenEntry | None:
    """One line of the tokens file as an entry; None for a blank or comment line."""
    parts = line.split("#", 1)[0].split()
    if not parts:
        return None
    if len(parts) < 2:
        raise TokenConfigError(
            f"{where}: expected 'name sha256hex [key=value ...]', found {len(parts)} field"
        )
    raw: dict[str, object] = {"name": parts[0], "sha256": parts[1]}
    for number, part in enumerate(parts[2:], start=3):
        key, equals, value = part.partition("=")
        if not equals:
            raise TokenConfigError(
                f"{where}: field {number} {part!r} is not key=value "
                f"(keys: {', '.join(SCOPE_KEYS + TIME_KEYS)})"
            )
        if key in raw:
            raise TokenConfigError(f"{where}: {key}= is given twice")
        if key in SCOPE_KEYS:
            raw[key] = [] if value == NONE_GRANTED else value.split(",")
        else:
            raw[key] = value
    return parse(TokenEntry, raw, where, entry_depth=0, error=TokenConfigError)


def read_tokens_file(path: Path) -> list[tuple[int, TokenEntry]]:
    """Every entry of a tokens file with its line number; none if the file does not exist."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = parse_line(line, f"{path}:{number}")
        if entry is not None:
            entries.append((number, entry))
    return entries


@dataclass(frozen=True)
class TokenStore:
    """Token entries by hash; lookup compares every hash in constant time."""

    entries: dict[str, TokenEntry]

    @classmethod
    def from_environment(cls) -> "TokenStore":
        entries: dict[str, TokenEntry] = {}
        for index, text in enumerate(
            filter(None, (e.strip() for e in os.environ.get(TOKENS_ENV, "").split(",")))
        ):
            name, _, digest = text.rpartition(":")
            entry = parse(
                TokenEntry,
                {"name": name or f"env-{index + 1}", "sha256": digest},
                f"${TOKENS_ENV} entry {index + 1}",
                entry_depth=0,
                error=TokenConfigError,
            )
            entries[entry.sha256] = entry
        for _number, entry in read_tokens_file(default_tokens_file()):
            entries[entry.sha256] = entry
        return cls(entries)

    def entry_for(self, token: str) -> TokenEntry | None:
        digest = hash_token(token)
        found = None
        for stored, entry in self.entries.items():
            # No early exit: the time taken does not depend on which hash matched.
            if hmac.compare_digest(stored, digest):
                found = entry
        return found

    def in_force(self) -> list[TokenEntry]:
        now = datetime.now(UTC)
        return [entry for entry in self.entries.values() if entry.refusal(now) is None]


class ReloadingTokens:
    """The configured tokens, re-read when the tokens file changes.

    A token issued by `collab-data-api token` works at once, and one revoked by
    `collab-data-api tokens revoke` (or a line deleted from the file) stops at once, without
    restarting the server.
    """

    def __init__(self):
        # Resolved once: a stat of the file is all a request pays to see a change.
        self._path = default_tokens_file()
        self._stamp = self._file_stamp()
        self.store = TokenStore.from_environment()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        # The inode too: a revocation replaces the file, possibly within one mtime tick.
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def entry_for(self, token: str) -> TokenEntry | None:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            try:
                self.store = TokenStore.from_environment()
            except TokenConfigError:
                # A half-edited file must not lock everyone out: keep the last good tokens.
                log.exception("the tokens file changed but does not parse; the previous tokens stay in force")
            self._stamp = stamp
        return self.store.entry_for(token)
