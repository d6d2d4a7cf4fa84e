"""The SFTP accounts file: who may upload, how they log in, and how failed logins are limited.

Plain parsing, no Dagster. Its JSON Schema is docs/schemas/sftp_accounts.schema.json.

    users:
      meteo:                                   # an uploader, confined to <landing>/meteo
        password_hash: "scrypt$16384$8$1$..."   # from `collab-demo sftp-password`
        authorized_keys: ["ssh-ed25519 AAAA... meteo@laptop"]
      collector:                               # what SftpLandingZone logs in as
        home: "."                              # "." sees every uploader's folder
        authorized_keys: ["ssh-ed25519 AAAA... dagster@code-location"]
    login_limits: {slow_after: 3, ban_after: 10, ban_seconds: 900}
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, StrictInt, model_validator
from pydantic.json_schema import SkipJsonSchema

from collab_pipelines.config import ConfigError, StrictModel, parse, read_yaml

_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A salted, memory-hard hash: a leaked accounts file must not give the passwords away.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_HASH = re.compile(r"^scrypt\$\d+\$\d+\$\d+\$[0-9a-f]+\$[0-9a-f]+$")


class AccountsConfigError(ConfigError):
    """The accounts file is wrong; the message names the file, the account and the field."""


def _account_name(value: str) -> str:
    if not _ACCOUNT.match(value):
        raise ValueError(f"{value!r}: an account name uses letters, digits, '_', '.' and '-' only")
    return value


def _scrypt_hash(value: str) -> str:
    if not _HASH.match(value):
        raise ValueError("password_hash must come from `collab-demo sftp-password` (scrypt$...)")
    return value


class Account(StrictModel):
    name: SkipJsonSchema[str] = ""
    password_hash: Annotated[str, AfterValidator(_scrypt_hash)] | None = None
    authorized_keys: tuple[str, ...] = ()
    home: str | None = None
    """The account's folder under the landing zone (default: its name); "." sees every uploader."""

    @model_validator(mode="after")
    def _can_log_in(self) -> Account:
        if not self.password_hash and not self.authorized_keys:
            raise ValueError("an account needs a password_hash or authorized_keys")
        if self.home is not None and self.home != "." and not _ACCOUNT.match(self.home):
            raise ValueError(f"home {self.home!r} must be '.' or one folder name")
        return self

    @property
    def folder(self) -> str:
        return self.home or self.name

    @property
    def collector(self) -> bool:
        return self.folder == "."


class LoginLimits(StrictModel):
    """Failed logins from one address: slowed, then refused for a while (like SFTPGo's defender)."""

    window_seconds: Annotated[float, Field(gt=0)] = 600
    """Failures older than this are forgotten."""
    slow_after: Annotated[StrictInt, Field(ge=0)] = 3
    """Failures in the window before each further failure is answered more slowly."""
    delay_seconds: Annotated[float, Field(ge=0)] = 1
    """Added to a failure's answer for every failure beyond slow_after."""
    ban_after: Annotated[StrictInt, Field(ge=1)] = 10
    """Failures in the window after which the address is refused."""
    ban_seconds: Annotated[float, Field(gt=0)] = 900
    failure_seconds: Annotated[float, Field(ge=0)] = 0.5
    """Every failed login takes at least this long, whether or not the user exists."""


class AccountsFile(StrictModel):
    """The SFTP server's accounts file."""

    users: dict[Annotated[str, AfterValidator(_account_name)], Account] = Field(default_factory=dict)
    login_limits: LoginLimits = LoginLimits()

    @model_validator(mode="before")
    @classmethod
    def _names(cls, raw: object) -> object:
        if isinstance(raw, dict) and isinstance(raw.get("users"), dict):
            users = {k: {**v, "name": k} if isinstance(v, dict) else v for k, v in raw["users"].items()}
            raw = {**raw, "users": users}
        return raw


def load_accounts_file(path: Path | str) -> AccountsFile:
    raw = read_yaml(path, AccountsConfigError)
    return parse(AccountsFile, raw or {}, str(path), entry_depth=2, error=AccountsConfigError)


def load_accounts(path: Path | str) -> dict[str, Account]:
    return dict(load_accounts_file(path).users)


def password_hash(password: str, salt: bytes | None = None) -> str:
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        offered = hashlib.scrypt(
            password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(offered.hex(), digest)


def check_password(account: Account | None, password: str) -> bool:
    """Whether the password is the account's: the same work whether or not the account exists."""
    known = account is not None and account.password_hash is not None
    matches = verify_password(password, account.password_hash if known else dummy_hash())
    return known and matches


@functools.cache
def dummy_hash() -> str:
    """Checked for unknown users, so a wrong user name costs the same hash as a wrong password."""
    return password_hash("", salt=b"collab-no-user!!")
