"""A stand-in for GitHub's and GitLab's commit-status endpoints, for tests.

It is not GitHub or GitLab: it implements only the one documented endpoint of each and
refuses anything that differs from the documentation in method, path, headers or body.
- GitHub, "Create a commit status" (docs.github.com/en/rest/commits/statuses):
  POST /repos/{owner}/{repo}/statuses/{sha}; Accept: application/vnd.github+json;
  Authorization: Bearer <token>; X-GitHub-Api-Version: 2022-11-28; JSON body with `state`
  (error, failure, pending, success) and optional target_url, description, context. 201.
- GitLab, "Set the pipeline status of a commit" (docs.gitlab.com/ee/api/commits.html):
  POST /api/v4/projects/{id or URL-encoded path}/statuses/{sha}; PRIVATE-TOKEN header;
  `state` (pending, running, success, failed, canceled, skipped) and optional name,
  target_url, description. 201.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

GITHUB_PATH = re.compile(r"^/repos/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/statuses/(?P<sha>[0-9a-f]{40})$")
GITLAB_PATH = re.compile(r"^/api/v4/projects/(?P<project>[^/]+)/statuses/(?P<sha>[0-9a-f]{40})$")
GITHUB_STATES = {"error", "failure", "pending", "success"}
GITLAB_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}


class StatusStandIn:
    def __init__(self, host: str, token: str):
        self.host, self.token = host, token
        self.accepted: list[dict] = []
        self.refused: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 -- http.server's name
                stand_in._handle(self)

            def do_GET(self):  # noqa: N802
                stand_in._refuse(self, 405, "only POST is implemented")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}" + (
            "/api/v4" if host == "gitlab" else ""
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.server.shutdown()
        self.server.server_close()

    def _refuse(self, handler, code: int, problem: str) -> None:
        self.refused.append(problem)
        body = json.dumps({"message": problem}).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handle(self, handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        if handler.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self._refuse(handler, 415, "Content-Type must be application/json")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return self._refuse(handler, 400, "the body is not JSON")
        if self.host == "github":
            match = GITHUB_PATH.match(handler.path)
            if not match:
                return self._refuse(handler, 404, f"no such endpoint: {handler.path}")
            if handler.headers.get("Authorization") != f"Bearer {self.token}":
                return self._refuse(handler, 401, "Bad credentials")
            if handler.headers.get("Accept") != "application/vnd.github+json":
                return self._refuse(handler, 415, "Accept must be application/vnd.github+json")
            if handler.headers.get("X-GitHub-Api-Version") != "2022-11-28":
                return self._refuse(handler, 400, "X-GitHub-Api-Version must be 2022-11-28")
            allowed, states = {"state", "target_url", "description", "context"}, GITHUB_STATES
        else:
            match = GITLAB_PATH.match(handler.path)
            if not match:
                return self._refuse(handler, 404, f"no such endpoint: {handler.path}")
            if handler.headers.get("PRIVATE-TOKEN") != self.token:
                return self._refuse(handler, 401, "401 Unauthorized")
            allowed = {
                "state",
                "ref",
                "name",
                "context",
                "target_url",
                "description",
                "coverage",
                "pipeline_id",
            }
            states = GITLAB_STATES
        if not isinstance(body, dict) or body.get("state") not in states or set(body) - allowed:
            return self._refuse(handler, 422, f"invalid body: {body}")
        if len(body.get("description") or "") > 140:
            return self._refuse(handler, 422, "description is longer than 140 characters")
        record = {"path": handler.path, "headers": dict(handler.headers), "body": body, **match.groupdict()}
        if "project" in record:
            record["project"] = unquote(record["project"])
        self.accepted.append(record)
        answer = json.dumps({"id": len(self.accepted), **body}).encode()
        handler.send_response(201)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)
