"""The SFTP server domain experts upload to, built on asyncssh's SFTP server.

Each uploader is confined to its own folder of the landing zone (asyncssh's chroot, plus a
check that no path resolves outside it through a symbolic link). There, it may only create,
write, rename, truncate, retime and remove files directly in `inbox/`; `staging/`,
`processed/` and `quarantine/` are read-only, sub-folders and links cannot be made, and no
one changes permissions or owners. An upload is written under a temporary dot-name and renamed
to its own name when the client closes it, as SFTPGo's atomic uploads are: a server or client
killed mid-upload leaves no part of a file where the upload sensor takes complete ones (the
dot-name is quarantined as unfinished after `abandoned_after_hours`). The `collector` kind of account (home ".") sees every
uploader's folder: it is what `SftpLandingZone` logs in as. Failed logins all cost the same
time and are limited per address (`sftp_guard.py`).
"""

import asyncio
import os
import posixpath
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from collab_pipelines import fault_points
from collab_pipelines.intake.sftp_accounts import (
    Account,
    LoginLimits,
    check_password,
    load_accounts,
    load_accounts_file,
    password_hash,
)
from collab_pipelines.intake.sftp_guard import LoginGuard, log

__all__ = ["ServerConfig", "load_accounts", "password_hash", "serve_forever", "start_server"]
UPLOADER_FOLDERS = ("inbox", "staging", "processed", "quarantine")


@dataclass
class ServerConfig:
    root: Path
    accounts: dict[str, Account] = field(default_factory=dict)
    limits: LoginLimits = field(default_factory=LoginLimits)

    @classmethod
    def from_file(cls, root: Path, accounts_file: Path) -> "ServerConfig":
        parsed = load_accounts_file(accounts_file)
        return cls(root=root, accounts=dict(parsed.users), limits=parsed.login_limits)


class _Server(asyncssh.SSHServer):
    def __init__(self, config: ServerConfig, guard: LoginGuard):
        self.config, self.guard = config, guard
        self.connection: asyncssh.SSHServerConnection | None = None
        self.address = "?"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connection = conn
        peer = conn.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"

    def begin_auth(self, username: str) -> bool:
        remaining = self.guard.banned_for(self.address)
        if remaining:
            raise asyncssh.DisconnectError(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                f"too many failed logins from {self.address}; try again in {remaining:.0f} s",
            )
        account = self.config.accounts.get(username)
        if account and account.authorized_keys and self.connection is not None:
            self.connection.set_authorized_keys(
                asyncssh.import_authorized_keys("\n".join(account.authorized_keys))
            )
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        account = self.config.accounts.get(username)
        # The hash runs off the event loop, so one login does not stall every other session.
        matches = await loop.run_in_executor(None, check_password, account, password)
        # A ban that began during this connection holds for its remaining attempts too.
        if matches and not self.guard.banned_for(self.address):
            return True
        delay = self.guard.failed(self.address, username)
        await asyncio.sleep(max(0.0, self.config.limits.failure_seconds - (loop.time() - started)) + delay)
        return False

    def public_key_auth_supported(self) -> bool:
        return True


class ConfinedSFTPServer(asyncssh.SFTPServer):
    """One session's file system: the account's home, and nothing outside it."""

    def __init__(self, chan: asyncssh.SSHServerChannel, config: ServerConfig):
        account = config.accounts[chan.get_extra_info("username")]
        home = (config.root / account.folder).resolve()
        if not account.collector:
            for folder in UPLOADER_FOLDERS:
                (home / folder).mkdir(parents=True, exist_ok=True)
        self._home = os.fsencode(home)
        self._inbox = os.path.join(self._home, b"inbox")
        self._collector = account.collector
        self._uploads: dict[object, tuple[bytes, bytes]] = {}
        self._failed: set[object] = set()
        super().__init__(chan, chroot=self._home)

    def map_path(self, path: bytes) -> bytes:
        local = super().map_path(path)
        # The chroot stops "..", but a link planted inside could still point outside.
        real = os.path.realpath(local)
        if real != self._home and not real.startswith(self._home + b"/"):
            raise asyncssh.SFTPPermissionDenied("path leads outside your folder")
        return local

    def _require_upload(self, local: bytes) -> None:
        """Only the account's own files directly in inbox/ may change."""
        if self._collector:
            return
        if os.path.dirname(os.path.normpath(local)) != self._inbox:
            if os.path.normpath(local).startswith(self._inbox + b"/"):
                raise asyncssh.SFTPPermissionDenied(
                    "sub-folders of inbox/ are not taken; upload files directly"
                )
            raise asyncssh.SFTPPermissionDenied("uploads go into inbox/; other folders are read-only")

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs):
        if pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC):
            final = self.map_path(path)
            self._require_upload(final)
            # A new upload (not an append to a file already there) is written aside; see close().
            whole = pflags & asyncssh.FXF_TRUNC or not os.path.exists(final)
            if not self._collector and whole and not pflags & asyncssh.FXF_APPEND:
                temporary = _upload_name(path)
                file_obj = super().open(temporary, pflags | asyncssh.FXF_CREAT, attrs)
                self._uploads[file_obj] = (self.map_path(temporary), final)
                return file_obj
        return super().open(path, pflags, attrs)

    def write(self, file_obj, offset: int, data: bytes):
        try:
            written = super().write(file_obj, offset, data)
        except OSError:
            # A full disk: the client is told, and what was written of the upload goes on close.
            self._failed.add(file_obj)
            raise
        fault_points.reached("sftp.upload_chunk_written")
        return written

    def close(self, file_obj) -> None:
        upload = self._uploads.pop(file_obj, None)
        failed = file_obj in self._failed
        self._failed.discard(file_obj)
        try:
            super().close(file_obj)
        except OSError:
            failed = True
        if upload is None:
            return
        temporary, final = upload
        if failed:
            os.unlink(temporary)
            return
        if self.channel.is_closing():
            # The session ended with the file still open (the client was cut off): it is not
            # complete, and stays under its temporary name.
            log.warning("upload %s cut off before the client closed it", os.fsdecode(final))
            return
        os.replace(temporary, final)

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs):
        if desired_access & (
            asyncssh.ACE4_WRITE_DATA | asyncssh.ACE4_APPEND_DATA | asyncssh.ACE4_WRITE_ATTRIBUTES
        ):
            self._require_upload(self.map_path(path))
        return super().open56(path, desired_access, flags, attrs)

    def _check_attrs(self, local: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self._require_upload(local)
        if self._collector:
            return
        if (
            attrs.permissions is not None
            or attrs.uid is not None
            or attrs.gid is not None
            or attrs.owner
            or attrs.group
        ):
            raise asyncssh.SFTPPermissionDenied("permissions and owners are set by the server")

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs):
        self._check_attrs(self.map_path(path), attrs)
        return super().setstat(path, attrs)

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs):
        self._check_attrs(self.map_path(path), attrs)
        return super().lsetstat(path, attrs)

    def fsetstat(self, file_obj, attrs: asyncssh.SFTPAttrs):
        self._check_attrs(os.fsencode(file_obj.name), attrs)
        return super().fsetstat(file_obj, attrs)

    def remove(self, path: bytes) -> None:
        self._require_upload(self.map_path(path))
        return super().remove(path)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._require_upload(self.map_path(oldpath))
        self._require_upload(self.map_path(newpath))
        return super().rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._require_upload(self.map_path(oldpath))
        self._require_upload(self.map_path(newpath))
        return super().posix_rename(oldpath, newpath)

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        if not self._collector:
            raise asyncssh.SFTPPermissionDenied("folders cannot be made; upload files directly into inbox/")
        return super().mkdir(path, attrs)

    def rmdir(self, path: bytes) -> None:
        if not self._collector:
            raise asyncssh.SFTPPermissionDenied("folders cannot be removed")
        return super().rmdir(path)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed")


def _upload_name(path: bytes) -> bytes:
    """Where an upload is written until it is closed: a dot-name the upload sensor leaves alone."""
    folder, name = posixpath.split(path)
    suffix = b".upload-" + secrets.token_hex(4).encode()
    # A name near the file system's 255-byte limit would not fit its prefix and suffix.
    temporary = b"." + name + suffix if len(name) + len(suffix) < 250 else suffix
    return posixpath.join(folder, temporary)


def host_key(path: Path) -> asyncssh.SSHKey:
    """The server's host key, created once and kept, so clients can pin it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(path))
        os.chmod(path, 0o600)
        key.write_public_key(str(path) + ".pub")
    return asyncssh.read_private_key(str(path))


async def start_server(config: ServerConfig, host_key_path: Path, host: str = "127.0.0.1", port: int = 2222):
    """Start listening; returns the asyncssh acceptor (`.close()` stops it)."""
    config.root.mkdir(parents=True, exist_ok=True)
    guard = LoginGuard(config.limits)
    log.info("SFTP server on %s:%s, %d accounts", host, port, len(config.accounts))
    return await asyncssh.listen(
        host,
        port,
        server_host_keys=[host_key(host_key_path)],
        server_factory=lambda: _Server(config, guard),
        sftp_factory=lambda chan: ConfinedSFTPServer(chan, config),
        allow_scp=False,
    )


def serve_forever(config: ServerConfig, host_key_path: Path, host: str, port: int) -> None:
    async def main() -> None:
        await start_server(config, host_key_path, host, port)
        await asyncio.Event().wait()

    asyncio.run(main())
