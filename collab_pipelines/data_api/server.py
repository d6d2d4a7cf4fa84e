"""`collab-data-api`: serve the data API, or issue a token.

collab-data-api serve --host 127.0.0.1 --port 8020
collab-data-api token alice        # prints a new token once; stores only its hash
"""

import argparse
import logging
import os
import sys
from pathlib import Path

import dagster as dg

from collab_pipelines import settings
from collab_pipelines.data_api.app import create_app
from collab_pipelines.data_api.auth import (
    ReloadingTokens,
    TokenConfigError,
    default_tokens_file,
    issue_token,
)
from collab_pipelines.data_api.catalog import DatasetCatalog, load_asset_graph
from collab_pipelines.data_api.deps import ApiConfig
from collab_pipelines.warehouse.engine import engine_for_url

CHUNK_ROWS_ENV = "COLLAB_API_CHUNK_ROWS"
DEFAULT_PORT = 8020


def instance() -> dg.DagsterInstance:
    """The Dagster instance of $DAGSTER_HOME, else the embedded default's under the state folder."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    from dagster._core.instance.ref import InstanceRef

    home = settings.state_dir() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def build_app():
    tokens = ReloadingTokens()
    if not tokens.store.hashes:
        raise TokenConfigError(
            f"no API token is configured: run `collab-data-api token <name>` (writes {default_tokens_file()}), "
            "or set $COLLAB_API_TOKENS / $COLLAB_API_TOKENS_FILE"
        )
    catalog = DatasetCatalog(
        engine_for_url(settings.warehouse_url(), readonly=True), instance(), load_asset_graph()
    )
    chunk_rows = int(os.environ.get(CHUNK_ROWS_ENV) or 5_000)
    return create_app(
        ApiConfig(catalog=catalog, tokens=tokens, shared_dir=settings.shared_dir(), chunk_rows=chunk_rows)
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
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="start the HTTP service (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    token = commands.add_parser("token", help="issue a new token for a person or script")
    token.add_argument("name")
    token.add_argument(
        "--file", type=Path, help="tokens file (default $COLLAB_API_TOKENS_FILE or .state/api_tokens)"
    )
    args = parser.parse_args(argv)

    if args.command == "token":
        try:
            value, path = issue_token(args.name, args.file)
        except TokenConfigError as error:
            parser.error(str(error))
        print(value)
        print(f"its SHA-256 hash was added to {path}; the token itself is not stored", file=sys.stderr)
        return 0

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
