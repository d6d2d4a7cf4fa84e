"""The landing zone: per-uploader folders that the SFTP server writes and the sensor reads.

Each uploader has four folders: `inbox/` (they upload here), `staging/` (taken by the sensor,
waiting for ingestion), `processed/` and `quarantine/` (where every file ends, with an
`.error.txt` beside a quarantined one). Moves are renames, so a file is never in two places.
"""

import builtins
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import paramiko
from pydantic import Field, PrivateAttr

from collab_pipelines import settings
from collab_pipelines.intake.upload_types import LandingZoneConfig

FOLDERS = ("inbox", "staging", "processed", "quarantine")


class LandingZoneError(RuntimeError):
    """The landing zone could not be read or changed; names the uploader and file."""


@dataclass(frozen=True)
class LandedFile:
    user: str
    folder: str
    name: str
    size: int
    mtime: float


def _check(user: str, folder: str, name: str | None = None) -> None:
    if folder not in FOLDERS:
        raise LandingZoneError(f"unknown landing folder {folder!r}")
    for part in (user, name):
        if part is not None and (not part or "/" in part or part in (".", "..") or "\0" in part):
            raise LandingZoneError(f"invalid name {part!r} in the landing zone")


class LandingZone(dg.ConfigurableResource):
    """Where uploads arrive. `LocalLandingZone` and `SftpLandingZone` implement it.

    Every process of a deployment (sensor, run workers) must reach the same landing zone:
    the SFTP server itself, or a folder they all mount. A run never reads the code server's disk.
    """

    def users(self) -> list[str]:
        raise NotImplementedError

    def list(self, user: str, folder: str) -> list[LandedFile]:
        return self.scan(user, folder)[0]

    def scan(self, user: str, folder: str) -> tuple[builtins.list[LandedFile], builtins.list[str]]:
        """The regular files of a folder, and the names of anything else there (folders, links)."""
        raise NotImplementedError

    def read(self, user: str, folder: str, name: str) -> bytes:
        raise NotImplementedError

    def move(self, user: str, source: str, name: str, target: str, new_name: str | None = None) -> str:
        """Rename a file from one folder to another, atomically. Returns its new name."""
        raise NotImplementedError

    def write_text(self, user: str, folder: str, name: str, text: str) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class LocalLandingZone(LandingZone):
    """A local directory: the SFTP server's data root, or a shared filesystem mount."""

    root: str | None = Field(default=None, description="Empty means <shared folder>/landing.")

    def path(self) -> Path:
        # The SFTP server writes it, the sensor stages from it, runs read it: shared, not local.
        return Path(self.root) if self.root else settings.shared_dir() / "landing"

    def _folder(self, user: str, folder: str) -> Path:
        _check(user, folder)
        path = self.path() / user / folder
        path.mkdir(parents=True, exist_ok=True)
        return path

    def users(self) -> list[str]:
        root = self.path()
        if not root.exists():
            return []
        return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def scan(self, user: str, folder: str) -> tuple[builtins.list[LandedFile], builtins.list[str]]:
        files, others = [], []
        for entry in os.scandir(self._folder(user, folder)):
            # Symlinks are never followed: an upload is a regular file or nothing.
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                files.append(LandedFile(user, folder, entry.name, info.st_size, info.st_mtime))
            else:
                others.append(entry.name)
        return sorted(files, key=lambda f: f.name), sorted(others)

    def read(self, user: str, folder: str, name: str) -> bytes:
        _check(user, folder, name)
        path = self._folder(user, folder) / name
        if path.is_symlink():
            raise LandingZoneError(f"{user}/{folder}/{name} is a symbolic link; refused")
        try:
            return path.read_bytes()
        except OSError as error:
            raise LandingZoneError(f"cannot read {user}/{folder}/{name}: {error}") from error

    def move(self, user: str, source: str, name: str, target: str, new_name: str | None = None) -> str:
        _check(user, source, name)
        new_name = new_name or name
        _check(user, target, new_name)
        destination = self._folder(user, target) / new_name
        if destination.exists():
            raise LandingZoneError(f"{user}/{target}/{new_name} already exists; not overwritten")
        os.rename(self._folder(user, source) / name, destination)
        return new_name

    def write_text(self, user: str, folder: str, name: str, text: str) -> None:
        _check(user, folder, name)
        path = self._folder(user, folder) / name
        temporary = path.with_name(f".{name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)

    def describe(self) -> str:
        return f"local directory {self.path()}"


class SftpLandingZone(LandingZone):
    """A landing zone on a remote SFTP server, reached with an account that sees every uploader.

    The server's host key must be in `known_hosts`; an unknown key is refused, never trusted.
    """

    host: str
    port: int = 22
    username: str
    password: str | None = Field(default=None, description="Use dg.EnvVar; prefer a key.")
    private_key_path: str | None = None
    known_hosts_path: str = Field(description="OpenSSH known_hosts file with the server's host key.")
    root: str = Field(default="/", description="The folder that holds one folder per uploader.")
    timeout_seconds: float = 20
    _client: paramiko.SSHClient | None = PrivateAttr(default=None)
    _sftp: paramiko.SFTPClient | None = PrivateAttr(default=None)

    def _connection(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            client = paramiko.SSHClient()
            client.load_host_keys(self.known_hosts_path)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect(
                    self.host,
                    port=self.port,
                    username=self.username,
                    password=self.password,
                    key_filename=self.private_key_path,
                    timeout=self.timeout_seconds,
                    allow_agent=False,
                    look_for_keys=False,
                )
            except paramiko.SSHException as error:
                client.close()
                raise LandingZoneError(f"SFTP {self.username}@{self.host}:{self.port}: {error}") from error
            self._client, self._sftp = client, client.open_sftp()
        return self._sftp

    def teardown_after_execution(self, context) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._sftp = None

    def _remote(self, user: str, folder: str, name: str | None = None) -> str:
        _check(user, folder, name)
        return posixpath.join(self.root, user, folder, *([name] if name else []))

    def _ensure(self, path: str) -> None:
        sftp = self._connection()
        try:
            sftp.stat(path)
        except FileNotFoundError:
            sftp.mkdir(path)

    def users(self) -> list[str]:
        sftp = self._connection()
        return sorted(
            a.filename
            for a in sftp.listdir_attr(self.root)
            if stat.S_ISDIR(a.st_mode or 0) and not a.filename.startswith(".")
        )

    def scan(self, user: str, folder: str) -> tuple[builtins.list[LandedFile], builtins.list[str]]:
        path = self._remote(user, folder)
        self._ensure(path)
        files, others = [], []
        for a in self._connection().listdir_attr(path):
            if stat.S_ISREG(a.st_mode or 0):
                files.append(LandedFile(user, folder, a.filename, a.st_size or 0, float(a.st_mtime or 0)))
            else:
                others.append(a.filename)
        return sorted(files, key=lambda f: f.name), sorted(others)

    def read(self, user: str, folder: str, name: str) -> bytes:
        with self._connection().open(self._remote(user, folder, name), "rb") as handle:
            return handle.read()

    def move(self, user: str, source: str, name: str, target: str, new_name: str | None = None) -> str:
        new_name = new_name or name
        self._ensure(self._remote(user, target))
        # posix_rename refuses nothing silently; plain SFTP rename fails if the target exists.
        self._connection().rename(self._remote(user, source, name), self._remote(user, target, new_name))
        return new_name

    def write_text(self, user: str, folder: str, name: str, text: str) -> None:
        self._ensure(self._remote(user, folder))
        with self._connection().open(self._remote(user, folder, name), "wb") as handle:
            handle.write(text.encode("utf-8"))

    def describe(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}{self.root}"


def landing_zone_from(config: LandingZoneConfig | None) -> LandingZone:
    """The landing zone an uploads file names; without one, the local `<shared folder>/landing`."""
    if config is None or config.local is not None:
        return LocalLandingZone(root=config.local.root if config else None)
    sftp = config.sftp
    return SftpLandingZone(
        host=sftp.host,
        port=sftp.port,
        username=sftp.username,
        password=dg.EnvVar(sftp.password_env) if sftp.password_env else None,
        private_key_path=sftp.private_key_path,
        known_hosts_path=sftp.known_hosts_path,
        root=sftp.root,
    )
