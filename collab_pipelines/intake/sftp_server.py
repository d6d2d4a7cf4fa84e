"""The SFTP server domain experts upload to, built on asyncssh's SFTP server.

Each account is confined to its own folder of the landing zone (asyncssh's chroot, plus a
check that no path resolves outside it through a symbolic link), may write only in `inbox/`,
and may not create links. The `collector` kind of account (home ".") sees every uploader's
folder: it is what `SftpLandingZone` logs in as.
"""

import asyncio
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import yaml

WRITABLE_FOLDER = b"inbox"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


@dataclass(frozen=True)
class Account:
    name: str
    home: str
    password_hash: str | None = None
    authorized_keys: tuple[str, ...] = ()
    collector: bool = False

    def password_ok(self, password: str) -> bool:
        return bool(self.password_hash) and verify_password(password, self.password_hash)


@dataclass
class ServerConfig:
    root: Path
    accounts: dict[str, Account] = field(default_factory=dict)


def load_accounts(path: Path) -> dict[str, Account]:
    """Read the accounts file: `users: {name: {password_hash, authorized_keys, home}}`."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    accounts = {}
    for name, settings in (raw.get("users") or {}).items():
        settings = settings or {}
        if not settings.get("password_hash") and not settings.get("authorized_keys"):
            raise ValueError(f"{path}: user {name!r} has neither password_hash nor authorized_keys")
        if settings.get("password_hash") and not str(settings["password_hash"]).startswith("scrypt$"):
            raise ValueError(
                f"{path}: user {name!r}: password_hash must come from "
                "`collab-demo sftp-password` (scrypt$...)"
            )
        home = str(settings.get("home", name))
        accounts[name] = Account(
            name=name,
            home=home,
            password_hash=settings.get("password_hash"),
            authorized_keys=tuple(settings.get("authorized_keys") or ()),
            collector=home == ".",
        )
    return accounts


# A salted, memory-hard hash: a leaked accounts file must not give the passwords away.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def password_hash(password: str) -> str:
    salt = os.urandom(16)
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


class _Server(asyncssh.SSHServer):
    def __init__(self, config: ServerConfig):
        self.config = config
        self.connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connection = conn

    def begin_auth(self, username: str) -> bool:
        account = self.config.accounts.get(username)
        if account and account.authorized_keys and self.connection is not None:
            self.connection.set_authorized_keys(
                asyncssh.import_authorized_keys("\n".join(account.authorized_keys))
            )
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        account = self.config.accounts.get(username)
        return bool(account and account.password_ok(password))

    def public_key_auth_supported(self) -> bool:
        return True


class ConfinedSFTPServer(asyncssh.SFTPServer):
    """One session's file system: the account's home, and nothing outside it."""

    def __init__(self, chan: asyncssh.SSHServerChannel, config: ServerConfig):
        account = config.accounts[chan.get_extra_info("username")]
        home = (config.root / account.home).resolve()
        if not account.collector:
            for folder in ("inbox", "staging", "processed", "quarantine"):
                (home / folder).mkdir(parents=True, exist_ok=True)
        self._home = os.fsencode(home)
        self._collector = account.collector
        super().__init__(chan, chroot=self._home)

    def map_path(self, path: bytes) -> bytes:
        local = super().map_path(path)
        # The chroot stops "..", but a link planted inside could still point outside.
        real = os.path.realpath(local)
        if real != self._home and not real.startswith(self._home + b"/"):
            raise asyncssh.SFTPPermissionDenied("path leads outside your folder")
        return local

    def _require_writable(self, local: bytes) -> None:
        if self._collector:
            return
        inbox = os.path.join(self._home, WRITABLE_FOLDER)
        if local != inbox and not local.startswith(inbox + b"/"):
            raise asyncssh.SFTPPermissionDenied("uploads go into inbox/; other folders are read-only")

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs):
        if pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC):
            self._require_writable(self.map_path(path))
        return super().open(path, pflags, attrs)

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs):
        if desired_access & (asyncssh.ACE4_WRITE_DATA | asyncssh.ACE4_APPEND_DATA):
            self._require_writable(self.map_path(path))
        return super().open56(path, desired_access, flags, attrs)

    def remove(self, path: bytes) -> None:
        self._require_writable(self.map_path(path))
        return super().remove(path)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._require_writable(self.map_path(oldpath))
        self._require_writable(self.map_path(newpath))
        return super().rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._require_writable(self.map_path(oldpath))
        self._require_writable(self.map_path(newpath))
        return super().posix_rename(oldpath, newpath)

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self._require_writable(self.map_path(path))
        return super().mkdir(path, attrs)

    def rmdir(self, path: bytes) -> None:
        self._require_writable(self.map_path(path))
        return super().rmdir(path)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed")


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
    return await asyncssh.listen(
        host,
        port,
        server_host_keys=[host_key(host_key_path)],
        server_factory=lambda: _Server(config),
        sftp_factory=lambda chan: ConfinedSFTPServer(chan, config),
        allow_scp=False,
    )


def serve_forever(config: ServerConfig, host_key_path: Path, host: str, port: int) -> None:
    async def main() -> None:
        await start_server(config, host_key_path, host, port)
        await asyncio.Event().wait()

    asyncio.run(main())
