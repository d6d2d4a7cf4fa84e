"""`collab-demo sftp`: the demo's SFTP server, writing into the local landing zone."""

import argparse
import getpass
import secrets
from pathlib import Path

import yaml

from collab_pipelines import settings
from collab_pipelines.intake.landing import LocalLandingZone
from collab_pipelines.intake.sftp_server import (
    ServerConfig,
    password_hash,
    serve_forever,
)

DEMO_UPLOADER = "meteo"


def demo_users_file(folder: Path) -> Path:
    """A users file with the meteorology team's account, created once with a random password."""
    path = folder / "users.yaml"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(12)
        path.write_text(
            yaml.safe_dump({"users": {DEMO_UPLOADER: {"password_hash": password_hash(password)}}})
        )
        path.chmod(0o600)
        (folder / f"{DEMO_UPLOADER}.password").write_text(password + "\n")
        (folder / f"{DEMO_UPLOADER}.password").chmod(0o600)
    return path


def _serve(args: argparse.Namespace) -> None:
    folder = settings.state_dir() / "sftp"
    users = Path(args.users) if args.users else demo_users_file(folder)
    root = LocalLandingZone().path()
    config = ServerConfig.from_file(root, users)
    print(f"SFTP on {args.host}:{args.port}, landing zone {root}, accounts from {users}")
    if not args.users:
        print(f"demo account: {DEMO_UPLOADER}, password in {folder / (DEMO_UPLOADER + '.password')}")
    serve_forever(config, folder / "ssh_host_ed25519_key", args.host, args.port)


def _hash(_args: argparse.Namespace) -> None:
    print(password_hash(getpass.getpass("password for the SFTP account: ")))


def register(commands) -> None:
    sftp = commands.add_parser("sftp", help="run the SFTP server domain experts upload to")
    sftp.add_argument("--host", default="127.0.0.1")
    sftp.add_argument("--port", type=int, default=2222)
    sftp.add_argument("--users", help="accounts file (default: a demo account in .state/sftp)")
    sftp.set_defaults(func=_serve)
    hashing = commands.add_parser("sftp-password", help="print the password_hash line for an accounts file")
    hashing.set_defaults(func=_hash)
