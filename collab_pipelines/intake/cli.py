"""`collab-sftp`: the product's SFTP server, on the team's accounts file.

    collab-sftp serve [--accounts FILE] [--host H] [--port P]   # default: sftp_accounts.yaml
    collab-sftp password-hash                                   # a password_hash line

The accounts file defaults to `sftp_accounts.yaml` in the configuration folder
($COLLAB_CONFIG_DIR), so the server and the upload sensor read one configuration. Its
login limits apply. The landing zone is the local one in the shared folder, which the code
location and the runs mount too (docs/deploy.md); the host key is the server's own, created
once in its state folder.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from collab_pipelines import settings
from collab_pipelines.config import ConfigError
from collab_pipelines.intake.landing import LocalLandingZone
from collab_pipelines.intake.sftp_server import ServerConfig, password_hash, serve_forever


def serve(accounts: Path, host: str, port: int) -> None:
    config = ServerConfig.from_file(LocalLandingZone().path(), accounts)
    key = settings.state_dir() / "sftp" / "ssh_host_ed25519_key"
    print(
        f"SFTP on {host}:{port}, landing zone {config.root}, {len(config.accounts)} account(s) from {accounts}"
    )
    serve_forever(config, key, host, port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collab-sftp", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="run the SFTP server domain experts upload to")
    serving.add_argument("--accounts", type=Path, help="accounts file (default: the configuration folder's)")
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--port", type=int, default=2222)
    commands.add_parser("password-hash", help="print the password_hash value for an accounts file")
    args = parser.parse_args(argv)
    if args.command == "password-hash":
        print(password_hash(getpass.getpass("password for the SFTP account: ")))
        return 0
    accounts = args.accounts or settings.sftp_accounts_file()
    try:
        serve(accounts, args.host, args.port)
    except (ConfigError, FileNotFoundError) as error:
        print(f"collab-sftp: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
