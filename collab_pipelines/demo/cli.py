"""`collab-demo`: set up and drive the demo from the command line."""

from __future__ import annotations

import argparse
import importlib
import sys
from datetime import date

from collab_pipelines.demo.paths import use_demo_configuration
from collab_pipelines.demo.resources import product_database
from collab_pipelines.demo.source import FIRST_DAY, NotADemoDatabase

DEFAULT_INITIAL_DAYS = 14
# Demo modules that add their own subcommands through `register(commands)`.
SUBCOMMAND_MODULES = (
    "collab_pipelines.demo.model_repo",
    "collab_pipelines.demo.sftp",
    "collab_pipelines.demo.up",
)


def _init(args: argparse.Namespace) -> None:
    database = product_database()
    database.initialize(date.fromisoformat(args.through), reset=args.reset)
    print(f"product database ready; replay clock at {database.now():%Y-%m-%d %H:%M}")


def _advance(args: argparse.Namespace) -> None:
    database = product_database()
    added = database.advance_to(date.fromisoformat(args.to)) if args.to else database.advance(args.days)
    print(f"released {added} rows; replay clock at {database.now():%Y-%m-%d %H:%M}")


def _status(_args: argparse.Namespace) -> None:
    now = product_database().now()
    print(f"replay clock at {now:%Y-%m-%d %H:%M}" if now else "not initialised: run `collab-demo init`")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collab-demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    init = commands.add_parser("init", help="create the product database and release the first days")
    default_through = date.fromordinal(FIRST_DAY.toordinal() + DEFAULT_INITIAL_DAYS).isoformat()
    init.add_argument(
        "--through", default=default_through, help="release the days before this date (default: %(default)s)"
    )
    init.add_argument("--reset", action="store_true", help="drop and reload an existing database")
    init.set_defaults(func=_init)

    advance = commands.add_parser("advance", help="move the replay clock forward")
    advance.add_argument("--days", type=int, default=1, help="days to release (default: 1)")
    advance.add_argument("--to", help="release every day before this date instead")
    advance.set_defaults(func=_advance)

    status = commands.add_parser("status", help="show the replay clock")
    status.set_defaults(func=_status)

    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_demo_configuration()
    try:
        args.func(args)
    except NotADemoDatabase as error:
        print(f"collab-demo: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
