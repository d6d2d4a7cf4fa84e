"""Bearer tokens, stored only as SHA-256 hashes.

Tokens come from `$COLLAB_API_TOKENS` (comma-separated `name:sha256hex` entries) and from a
tokens file (`$COLLAB_API_TOKENS_FILE`, default `<state dir>/api_tokens`), one `name sha256hex`
a line. The server never sees a token in the clear until a client presents one.
"""

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationInfo, field_validator

from collab_pipelines import settings
from collab_pipelines.config import ConfigError, StrictModel, parse

log = logging.getLogger(__name__)
TOKENS_ENV = "COLLAB_API_TOKENS"
TOKENS_FILE_ENV = "COLLAB_API_TOKENS_FILE"
_HASH = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")


class TokenConfigError(ConfigError):
    """A token entry is malformed; the message names its source and line."""


class TokenEntry(StrictModel):
    """One token: who holds it, and the SHA-256 of the token (never the token itself).

    The tokens file is a line format (`name sha256hex`), written by `collab-data-api token`
    like an htpasswd file, so it has no JSON Schema for editors; each line is this model.
    """

    name: str
    sha256: str

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.match(name):
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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def default_tokens_file() -> Path:
    return Path(os.environ.get(TOKENS_FILE_ENV) or settings.state_dir() / "api_tokens")


@dataclass(frozen=True)
class TokenStore:
    """Token name by hash; lookup compares every hash in constant time."""

    hashes: dict[str, str]

    @classmethod
    def from_environment(cls) -> "TokenStore":
        hashes: dict[str, str] = {}
        for index, entry in enumerate(
            filter(None, (e.strip() for e in os.environ.get(TOKENS_ENV, "").split(",")))
        ):
            name, _, digest = entry.rpartition(":")
            _add(hashes, name or f"env-{index + 1}", digest, f"${TOKENS_ENV} entry {index + 1}")
        path = default_tokens_file()
        if path.exists():
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise TokenConfigError(
                        f"{path}:{number}: expected 'name sha256hex', found {len(parts)} fields"
                    )
                _add(hashes, parts[0], parts[1], f"{path}:{number}")
        return cls(hashes)

    def name_for(self, token: str) -> str | None:
        digest = hash_token(token)
        found = None
        for stored, name in self.hashes.items():
            # No early exit: the time taken does not depend on which hash matched.
            if hmac.compare_digest(stored, digest):
                found = name
        return found


class ReloadingTokens:
    """The configured tokens, re-read when the tokens file changes.

    A token issued by `collab-data-api token` works at once, and a line deleted from the
    file revokes its token, without restarting the server.
    """

    def __init__(self):
        # Resolved once: a stat of the file is all a request pays to see a change.
        self._path = default_tokens_file()
        self._stamp = self._file_stamp()
        self.store = TokenStore.from_environment()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def name_for(self, token: str) -> str | None:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            try:
                self.store = TokenStore.from_environment()
            except TokenConfigError:
                # A half-edited file must not lock everyone out: keep the last good tokens.
                log.exception("the tokens file changed but does not parse; the previous tokens stay in force")
            self._stamp = stamp
        return self.store.name_for(token)


def _add(hashes: dict[str, str], name: str, digest: str, where: str) -> None:
    entry = parse(TokenEntry, {"name": name, "sha256": digest}, where, entry_depth=0, error=TokenConfigError)
    hashes[entry.sha256] = entry.name


def issue_token(name: str, path: Path | None = None) -> tuple[str, Path]:
    """A new random token; its hash is appended to the tokens file, the token is returned once."""
    if not _NAME.match(name):
        raise TokenConfigError(f"token name {name!r} must be 1-64 letters, digits or ._@+-")
    path = path or default_tokens_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a") as handle:
        handle.write(f"{name} {hash_token(token)}\n")
    return token, path
