"""`collab-data-api`: serve the data API, issue, list and revoke tokens, query the audit log.

collab-data-api serve --host 127.0.0.1 --port 8020
collab-data-api token alice        # prints a new token once; stores only its hash
collab-data-api tokens list | tokens revoke alice | audit --token alice --since 7d
"""

import argparse
import logging
import os
import sys

import dagster as dg

from collab_pipelines import settings
from collab_pipelines.data_api import commands, graph
from collab_pipelines.data_api.app import create_app
from collab_pipelines.data_api.audit import AuditLog, default_audit_log
from collab_pipelines.data_api.auth import ReloadingTokens, TokenConfigError, default_tokens_file
from collab_pipelines.data_api.catalog import DatasetCatalog
from collab_pipelines.data_api.deps import ApiConfig
from collab_pipelines.warehouse.engine import engine_for_url

CHUNK_ROWS_ENV = "COLLAB_API_CHUNK_ROWS"
DEFAULT_PORT = 8020


def instance() -> dg.DagsterInstance:
    """The Dagster instance of $DAGSTER_HOME, else the embedded default's under the state folder."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    home = settings.state_dir() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.from_config(str(home))


def build_app():
    tokens = ReloadingTokens()
    if not tokens.store.in_force():
        raise TokenConfigError(
            "no API token is configured (or every one is revoked or expired): run "
            f"`collab-data-api token <name>` (writes {default_tokens_file()}), "
            "or set $COLLAB_API_TOKENS / $COLLAB_API_TOKENS_FILE"
        )
    catalog = DatasetCatalog(
        engine_for_url(settings.warehouse_url(), readonly=True), instance(), graph.load()
    )
    chunk_rows = int(os.environ.get(CHUNK_ROWS_ENV) or 5_000)
    return create_app(
        ApiConfig(
            catalog=catalog,
            tokens=tokens,
            shared_dir=settings.shared_dir(),
            audit=AuditLog(default_audit_log()),
            chunk_rows=chunk_rows,
        )
    )


def problem_http_protocol():
    """uvicorn's httptools protocol, refusing what it cannot parse with a problem document.

    httptools stops at a 64 kB URL and uvicorn then answers in plain text; the app's own
    limit (`RequestLimits`) sits just below, so this answers only what never reaches it.
    """
    import json

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from collab_pipelines.data_api.problems import PROBLEM_MEDIA_TYPE, Problem

    class ProblemHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            too_long = len(getattr(self, "url", b"")) > 65_535
            problem = Problem(
                title="URI too long" if too_long else "Bad request",
                status=414 if too_long else 400,
                detail=f"the URL has {len(self.url)} bytes; the limit is 65535"
                if too_long
                else "the request is not valid HTTP/1.1",
            )
            body = json.dumps(problem.model_dump(exclude_none=True)).encode()
            reason = b"URI Too Long" if too_long else b"Bad Request"
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                % (problem.status, reason, PROBLEM_MEDIA_TYPE.encode(), len(body), body)
            )
            self.transport.close()

    return ProblemHttpToolsProtocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collab-data-api", description=__doc__.splitlines()[0])
    subcommands = parser.add_subparsers(dest="command")
    serve = subcommands.add_parser("serve", help="start the HTTP service (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    commands.add_commands(subcommands)
    args = parser.parse_args(argv)
    if args.command in ("token", "tokens", "audit"):
        return commands.run(args, parser)

    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = build_app()
    except TokenConfigError as error:
        print(f"collab-data-api: {error}", file=sys.stderr)
        return 2
    host = getattr(args, "host", "127.0.0.1")
    port = getattr(args, "port", DEFAULT_PORT)
    uvicorn.run(
        app, host=host, port=port, log_level="info", server_header=False, http=problem_http_protocol()
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
