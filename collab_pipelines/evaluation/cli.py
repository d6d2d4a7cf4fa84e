"""`collab-eval wait <suite> <commit>`: a commit's verdict, for a data scientist's own CI;
`collab-eval champion <suite>`: the suite's champion.

It asks the data API (`GET /v1/evaluations/{commit}`, with a token), so it needs neither
Dagster nor the warehouse, and imports neither: only the standard library.

    export COLLAB_API_URL=https://collab.example.com COLLAB_API_TOKEN=...
    collab-eval wait delay-model "$GITHUB_SHA" --timeout 1800

In a suite of several repositories, the answer is the commit's own change: the combination its
arrival made, the other repositories at what they held then (or, with `--with features=<sha>`,
the combination with that commit). Each verdict printed names its combination; the others the
commit was judged in are listed and do not count.

Exit codes: 0 passed, 1 regressed, 2 failed, 3 no verdict within the timeout, 4 the data API
refused or could not be reached.

`collab-eval try <suite> [path]`: the working tree at `path` (default `.`), uncommitted changes
included, judged as the server would judge its commit: the suite's pins, gates and baseline and
the data through the data API (cached by dataset, partition and ETag), run in the same sandboxed
harness. Prints the verdict with its gates in words and writes the report as one HTML file.
Exit codes: 0 passed, 1 regressed, 2 failed, 4 the data API refused or could not be reached.

`collab-eval champion <suite> [--history]`: the suite's champion, when, by whom and why
(`GET /v1/suites/{suite}/champion`). Exit codes: 0 a champion, 1 none, 4 the data API refused,
could not be reached or knows no such suite.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

URL_ENV, TOKEN_ENV = "COLLAB_API_URL", "COLLAB_API_TOKEN"
EXIT_CODES = {"passed": 0, "regressed": 1, "failed": 2}
TIMEOUT, API_ERROR = 3, 4
NO_CHAMPION = 1


class ApiError(RuntimeError):
    pass


def get(url: str, token: str, path: str) -> dict | None:
    """The data API's JSON answer at `path`, or None for a 404."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}{path}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        detail = error.read()[:500].decode(errors="replace")
        raise ApiError(f"the data API answered {error.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise ApiError(f"the data API at {url} cannot be reached: {error}") from None


def fetch(url: str, token: str, commit: str) -> list[dict]:
    """The commit's evaluations, or [] while none is recorded (404)."""
    found = get(url, token, f"/v1/evaluations/{urllib.parse.quote(commit)}")
    return found["evaluations"] if found else []


def commits_of(evaluation: dict) -> dict[str, str]:
    """Repository -> SHA of an evaluation: the full SHAs recorded, else the key's short ones."""
    recorded = evaluation["result"].get("commits")
    if recorded:
        return json.loads(recorded)
    combined = evaluation["evaluation_key"].partition(":")[2]
    return dict(part.split("@", 1) for part in combined.split("+") if "@" in part)


def verdict(
    evaluations: list[dict], suite: str, commit: str, others: dict[str, str] | None = None
) -> tuple[dict | None, list[dict]]:
    """The verdict on the commit's own change, and the suite's other finished combinations with it.

    The commit's own change is the combination its arrival made (`trigger` names its repository),
    the other repositories at what they held then; with `others` (repository -> SHA prefix), the
    combination with those commits instead. The newest such evaluation answers.
    """
    commit = commit.lower()
    finished = [
        e
        for e in evaluations
        if e["evaluation_key"].startswith(f"{suite}:") and e["result"].get("status") in EXIT_CODES
    ]

    def own(evaluation: dict) -> bool:
        commits = commits_of(evaluation)
        if others:
            return all(commits.get(name, "").startswith(sha.lower()) for name, sha in others.items())
        trigger = evaluation["result"].get("trigger")
        if not trigger:
            return True  # recorded before triggers were: nothing tells the combinations apart
        # Several repositories where their new commits made it at once ("features/main, model/main").
        made_by = {part.strip().partition("/")[0] for part in trigger.split(",")}
        shas = [commits.get(repository, "") for repository in made_by]
        return any(sha and (sha.startswith(commit) or commit.startswith(sha)) for sha in shas)

    answers = [e for e in finished if own(e)]
    answer = max(answers, key=lambda e: str(e["result"].get("evaluated_at") or "")) if answers else None
    return answer, [e for e in finished if e is not answer]


def _where(args: argparse.Namespace) -> tuple[str, str] | None:
    token = args.token or os.environ.get(TOKEN_ENV)
    url = args.url or os.environ.get(URL_ENV)
    if not token or not url:
        print(f"collab-eval: give --url and --token, or set ${URL_ENV} and ${TOKEN_ENV}", file=sys.stderr)
        return None
    return url, token


def wait(args: argparse.Namespace) -> int:
    where = _where(args)
    if where is None:
        return API_ERROR
    url, token = where
    try:
        others = dict(pair.split("=", 1) for pair in args.with_commits)
    except ValueError:
        print(f"collab-eval: --with takes REPOSITORY=SHA, got {args.with_commits}", file=sys.stderr)
        return API_ERROR
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            found, also = verdict(fetch(url, token, args.commit), args.suite, args.commit, others)
        except ApiError as error:
            print(f"collab-eval: {error}", file=sys.stderr)
            return API_ERROR
        if found is not None or time.monotonic() >= deadline:
            break
        time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
    combined = [{"evaluation_key": e["evaluation_key"], "status": e["result"]["status"]} for e in also]
    if found is None:
        report = {"suite": args.suite, "commit": args.commit, "status": "timeout", "exit_code": TIMEOUT}
        if combined:
            report["other_combinations"] = combined
        what = "".join(f" (with {n}@{s})" for n, s in others.items())
        text = f"no verdict for {args.suite} at {args.commit}{what} within {args.timeout:g} s"
    else:
        result = found["result"]
        status = result["status"]
        reasons = [r for r in (result.get("message") or "").split("; ") if r]
        report = {
            "suite": args.suite,
            "commit": args.commit,
            "evaluation_key": found["evaluation_key"],
            "combination": commits_of(found),
            "trigger": result.get("trigger"),
            "status": status,
            "reasons": reasons,
            "metrics": {m["metric"]: m for m in found.get("metrics", [])},
            "run_id": result.get("run_id"),
            "exit_code": EXIT_CODES[status],
            "other_combinations": combined,
        }
        text = "\n".join([f"{found['evaluation_key']}: {status}", *(f"- {r}" for r in reasons)])
    if combined and not args.json:
        # Said, never counted: another author's commit in the combination is not this one's verdict.
        text += "\nalso judged with other repositories' commits (not counted in the exit code):"
        text += "".join(f"\n  {c['evaluation_key']}: {c['status']}" for c in combined)
    print(json.dumps(report, indent=2, default=str) if args.json else text)
    return report["exit_code"]


def _change_line(change: dict) -> str:
    what = change["evaluation_key"] if change["action"] == "promote" else "no champion"
    return (
        f"{change['at']}  {change['action']:<7} {what} (was {change['previous_key'] or 'none'}) "
        f"by {change['by']}: {change['reason']}"
    )


def champion(args: argparse.Namespace) -> int:
    where = _where(args)
    if where is None:
        return API_ERROR
    try:
        found = get(*where, f"/v1/suites/{urllib.parse.quote(args.suite, safe='')}/champion")
    except ApiError as error:
        print(f"collab-eval: {error}", file=sys.stderr)
        return API_ERROR
    if found is None:
        print(
            f"collab-eval: the data API knows no suite {args.suite!r} (or this token may not read it)",
            file=sys.stderr,
        )
        return API_ERROR
    current = found["champion"]
    if not args.history:
        found.pop("history")
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        lines = [
            f"{args.suite}: champion {current['evaluation_key']}, promoted {current['at']} "
            f"by {current['by']}: {current['reason']}"
            if current
            else f"{args.suite}: no champion"
        ]
        lines += [_change_line(change) for change in found.get("history", [])]
        print("\n".join(lines))
    return 0 if current else NO_CHAMPION


def try_working_tree(args: argparse.Namespace) -> int:
    where = _where(args)
    if where is None:
        return API_ERROR
    # Loaded here: `wait` and `champion` stay on the standard library.
    import httpx

    from collab_pipelines.data_api.client import Client, DataApiError
    from collab_pipelines.evaluation.local_try import TryError, try_tree, write_report

    def output(stream: str, line: str) -> None:
        if args.verbose:
            print(f"[{stream}] {line}", file=sys.stderr)

    try:
        with Client(*where) as client:
            result = try_tree(args.path, args.suite, client, through=args.through, output=output)
    except TryError as error:
        print(f"collab-eval: {error}", file=sys.stderr)
        return EXIT_CODES["failed"]
    except DataApiError as error:
        print(f"collab-eval: the data API refused: {error}", file=sys.stderr)
        return API_ERROR
    except (OSError, httpx.HTTPError) as error:
        print(f"collab-eval: the data API at {where[0]} cannot be reached: {error}", file=sys.stderr)
        return API_ERROR
    write_report(result, Path(args.html) if args.html else None)
    if args.json:
        print(json.dumps(result.as_json(), indent=2, default=str))
    else:
        fetched = result.fetched
        print(result.text())
        print(
            f"data: {len(fetched.downloaded)} partitions downloaded ({fetched.bytes} bytes), "
            f"{len(fetched.unchanged)} unchanged; {result.seconds:.1f} s; report: {result.html_path}"
        )
    return result.exit_code


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"the data API's address (default ${URL_ENV})")
    parser.add_argument("--token", help=f"a data API token (default ${TOKEN_ENV})")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="collab-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    waiting = commands.add_parser("wait", help="wait for a commit's verdict; the exit code is the verdict")
    waiting.add_argument("suite")
    waiting.add_argument("commit", help="the commit's SHA (at least 4 hex digits)")
    waiting.add_argument(
        "--with",
        dest="with_commits",
        action="append",
        default=[],
        metavar="REPOSITORY=SHA",
        help="the verdict on the combination with this commit of another repository of the suite "
        "(repeatable); default: the commit's own change, the others at what they held when it came",
    )
    _api_options(waiting)
    waiting.add_argument("--timeout", type=float, default=1800, help="seconds to wait (default 1800)")
    waiting.add_argument("--interval", type=float, default=10, help="seconds between asks (default 10)")
    crowned = commands.add_parser("champion", help="print a suite's champion: when, by whom and why")
    crowned.add_argument("suite")
    crowned.add_argument("--history", action="store_true", help="every promotion and demotion too")
    _api_options(crowned)
    trying = commands.add_parser(
        "try", help="judge a working tree (uncommitted changes included) as the server would"
    )
    trying.add_argument("suite")
    trying.add_argument("path", nargs="?", default=".", help="the model repository's working tree")
    trying.add_argument("--through", help="the last day of data (default: the newest materialized)")
    trying.add_argument("--html", help="where to write the report (default: in the cache folder)")
    trying.add_argument("--verbose", action="store_true", help="forward the model's output")
    _api_options(trying)
    args = parser.parse_args(argv)
    commands_by_name = {"wait": wait, "champion": champion, "try": try_working_tree}
    return commands_by_name[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
