"""`collab-data-api` commands for administrators: tokens and the audit log.

collab-data-api token bob --datasets 'seattle_*' --suites rain --expires 30d
collab-data-api tokens list
collab-data-api tokens revoke bob
collab-data-api audit --token bob --since 7d
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from collab_pipelines.data_api.audit import AUDIT_LOG_ENV, AuditLog, default_audit_log, read_audit_log
from collab_pipelines.data_api.auth import SCOPE_KEYS, TOKENS_ENV, TokenConfigError, utc_text
from collab_pipelines.data_api.scope import FULL, NOTHING, Scope
from collab_pipelines.data_api.tokens import list_tokens, parse_when, replace_token, revoke_token

_FILE_HELP = "tokens file (default $COLLAB_API_TOKENS_FILE or .state/api_tokens)"


def add_commands(commands) -> None:
    token = commands.add_parser(
        "token",
        help="issue a new token for a person or script (replacing theirs, if one is in force)",
        description="Issue a token, printed once. Without --datasets, --suites or --reports it reads "
        "everything; with any of them it reads only what they name (names or globs, comma-separated "
        "or repeated; '-' for none). A token of that name still in force is revoked in the same change "
        "(the audit log records it).",
    )
    token.add_argument("name")
    for key, what in (
        ("datasets", "datasets it may read, e.g. 'seattle_*'"),
        ("suites", "evaluation suites whose evaluations (and reports) it may read"),
        ("reports", "report asset keys it may read, e.g. 'ops/*'"),
    ):
        token.add_argument(f"--{key}", action="append", metavar="GLOBS", help=what)
    token.add_argument("--expires", metavar="WHEN", help="30d, 12h, 2w, or a UTC date or time")
    token.add_argument("--file", type=Path, help=_FILE_HELP)

    tokens = commands.add_parser("tokens", help="list or revoke tokens (no server restart)")
    actions = tokens.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every token in the file: name, scope, expiry, state")
    listing.add_argument("--file", type=Path, help=_FILE_HELP)
    revoke = actions.add_parser("revoke", help="revoke every token of a name; the server refuses it at once")
    revoke.add_argument("name")
    revoke.add_argument("--file", type=Path, help=_FILE_HELP)

    audit = commands.add_parser("audit", help=f"query the audit log (${AUDIT_LOG_ENV})")
    audit.add_argument("--token", help="only this token name's reads")
    audit.add_argument("--dataset", help="only reads of this dataset")
    audit.add_argument("--since", metavar="WHEN", help="7d, 12h, or a UTC date or time")
    audit.add_argument("--json", action="store_true", help="the records as JSON lines")
    audit.add_argument("--log", type=Path, help="the audit log (default $COLLAB_API_AUDIT_LOG)")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        if args.command == "token":
            return _issue(args)
        if args.command == "tokens" and args.action == "list":
            return _list(args)
        if args.command == "tokens":
            count = revoke_token(args.name, args.file)
            AuditLog(default_audit_log()).record(args.name, "token", action="revoked", revoked=count)
            print(f"revoked {count} token(s) named {args.name!r}; the server refuses them from now on")
            return 0
        return _audit(args)
    except (TokenConfigError, ValueError) as error:
        parser.error(str(error))


def _issue(args) -> int:
    given = {key: getattr(args, key) for key in SCOPE_KEYS}
    scope = FULL
    if any(value is not None for value in given.values()):
        scope = Scope(**{key: _globs(value) for key, value in given.items()})
    expires = parse_when(args.expires) if args.expires else None
    value, path, replaced = replace_token(args.name, args.file, scope, expires)
    # Administration is audited too: who could read what, from when, and which token stopped.
    AuditLog(default_audit_log()).record(
        args.name, "token", action="replaced" if replaced else "issued", revoked=replaced or None
    )
    print(value)
    if replaced:
        print(
            f"the token named {args.name!r} that was in force is revoked: the server refuses it from now on.",
            file=sys.stderr,
        )
    print(
        f"its SHA-256 hash was added to {path}; the token itself is not stored. "
        f"It reads {describe(scope)}" + (f", until {utc_text(expires)}" if expires else "") + ".",
        file=sys.stderr,
    )
    return 0


def _globs(values: list[str] | None) -> tuple[str, ...]:
    """Repeated and comma-separated values, as one tuple; a flag not given grants nothing."""
    globs = [g.strip() for value in values or () for g in value.split(",")]
    return tuple(g for g in globs if g and g != "-") or NOTHING


def describe(scope: Scope) -> str:
    if scope.full:
        return "everything"
    return "; ".join(f"{key} {', '.join(getattr(scope, key)) or 'none'}" for key in SCOPE_KEYS)


def _list(args) -> int:
    now = datetime.now(UTC)
    for entry in list_tokens(args.file):
        state = (entry.refusal(now) or "in force").removeprefix("this token ").removeprefix("was ")
        expires = f"expires {utc_text(entry.expires)}" if entry.expires and entry.refusal(now) is None else ""
        print("\t".join(filter(None, [entry.name, state, expires, describe(entry.scope)])))
    print(f"(tokens in ${TOKENS_ENV} read everything and are not listed)", file=sys.stderr)
    return 0


def _audit(args) -> int:
    since = parse_when(args.since, ago=True) if args.since else None
    records = read_audit_log(
        args.log or default_audit_log(), token=args.token, since=since, dataset=args.dataset
    )
    for record in records:
        if args.json:
            print(json.dumps(record))
            continue
        what = (
            record.get("dataset")
            or record.get("commit")
            or record.get("report")
            or record.get("action")
            or ""
        )
        print(
            "\t".join(
                str(part)
                for part in (
                    record["at"],
                    record["token"],
                    record["read"],
                    what,
                    record.get("partition") or "",
                    record.get("rows", ""),
                )
            )
        )
    return 0
