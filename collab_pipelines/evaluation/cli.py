"""`collab-eval wait <suite> <commit>`: a commit's verdict, for a data scientist's own CI.

It asks the data API (`GET /v1/evaluations/{commit}`, with a token), so it needs neither
Dagster nor the warehouse, and imports neither: only the standard library.

    export COLLAB_API_URL=https://collab.example.com COLLAB_API_TOKEN=...
    collab-eval wait delay-model "$GITHUB_SHA" --timeout 1800

Exit codes: 0 passed, 1 regressed, 2 failed, 3 no verdict within the timeout, 4 the data API
refused or could not be reached.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

URL_ENV, TOKEN_ENV = "COLLAB_API_URL", "COLLAB_API_TOKEN"
EXIT_CODES = {"passed": 0, "regressed": 1, "failed": 2}
TIMEOUT, API_ERROR = 3, 4


class ApiError(RuntimeError):
    pass


def fetch(url: str, token: str, commit: str) -> list[dict]:
    """The commit's evaluations, or [] while none is recorded (404)."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/evaluations/{commit}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["evaluations"]
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return []
        detail = error.read()[:500].decode(errors="replace")
        raise ApiError(f"the data API answered {error.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise ApiError(f"the data API at {url} cannot be reached: {error}") from None


def verdict(evaluations: list[dict], suite: str) -> dict | None:
    """The suite's newest finished evaluation of the commit."""
    mine = [
        e
        for e in evaluations
        if e["evaluation_key"].startswith(f"{suite}:") and e["result"].get("status") in EXIT_CODES
    ]
    return max(mine, key=lambda e: str(e["result"].get("evaluated_at") or "")) if mine else None


def wait(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV)
    url = args.url or os.environ.get(URL_ENV)
    if not token or not url:
        print(f"collab-eval: give --url and --token, or set ${URL_ENV} and ${TOKEN_ENV}", file=sys.stderr)
        return API_ERROR
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            found = verdict(fetch(url, token, args.commit), args.suite)
        except ApiError as error:
            print(f"collab-eval: {error}", file=sys.stderr)
            return API_ERROR
        if found is not None or time.monotonic() >= deadline:
            break
        time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
    if found is None:
        report = {"suite": args.suite, "commit": args.commit, "status": "timeout", "exit_code": TIMEOUT}
        text = f"no verdict for {args.suite} at {args.commit} within {args.timeout:g} s"
    else:
        result = found["result"]
        status = result["status"]
        reasons = [r for r in (result.get("message") or "").split("; ") if r]
        report = {
            "suite": args.suite,
            "commit": args.commit,
            "evaluation_key": found["evaluation_key"],
            "status": status,
            "reasons": reasons,
            "metrics": {m["metric"]: m for m in found.get("metrics", [])},
            "run_id": result.get("run_id"),
            "exit_code": EXIT_CODES[status],
        }
        text = "\n".join([f"{found['evaluation_key']}: {status}", *(f"- {r}" for r in reasons)])
    print(json.dumps(report, indent=2, default=str) if args.json else text)
    return report["exit_code"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="collab-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    waiting = commands.add_parser("wait", help="wait for a commit's verdict; the exit code is the verdict")
    waiting.add_argument("suite")
    waiting.add_argument("commit", help="the commit's SHA (at least 4 hex digits)")
    waiting.add_argument("--url", help=f"the data API's address (default ${URL_ENV})")
    waiting.add_argument("--token", help=f"a data API token (default ${TOKEN_ENV})")
    waiting.add_argument("--timeout", type=float, default=1800, help="seconds to wait (default 1800)")
    waiting.add_argument("--interval", type=float, default=10, help="seconds between asks (default 10)")
    waiting.add_argument("--json", action="store_true", help="print the verdict as JSON")
    args = parser.parse_args(argv)
    return wait(args)


if __name__ == "__main__":
    sys.exit(main())
