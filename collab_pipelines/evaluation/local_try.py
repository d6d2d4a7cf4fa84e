"""A data scientist's working tree, uncommitted changes included, judged as the server would judge
its commit: `collab-eval try` and `try_model(".")`.

No Dagster and no warehouse: only the data API and a token. The suite's pinned fields, gates and
passed evaluations, the baseline's result and predictions, and the data come through the API;
the data is kept on disk by dataset, partition and ETag (`data_api/cache.py`). From there on it
is the server's own code (`verdict.py`): the same sandboxed harness, split, metrics, bootstrap
gates and prediction diff, so the same data gives the same verdict to the last digit.
"""

import dataclasses
import html
import json
import os
import shutil
import subprocess
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pandas as pd

from collab_pipelines.data_api.cache import Fetched, PartitionCache, cache_root
from collab_pipelines.data_api.client import Client, DataApiError
from collab_pipelines.evaluation import heldout
from collab_pipelines.evaluation.candidate_process import EvaluationFailed, OutputLog
from collab_pipelines.evaluation.contract import CONTRACT_FILE, Contract
from collab_pipelines.evaluation.gates import paired_rows
from collab_pipelines.evaluation.inputs import EvaluationData, conformed, evaluation_data
from collab_pipelines.evaluation.repos import GitError, GitRepository
from collab_pipelines.evaluation.suites import EvaluationKey, Suite
from collab_pipelines.evaluation.verdict import (
    FAILED,
    Checkout,
    Evaluation,
    declared_and_pinned,
    judged,
    run_commit,
)

SUITE_ENV = "COLLAB_SUITE"
# The changed rows a report shows; the result holds every one.
SHOWN_ROWS = 200


class TryError(RuntimeError):
    """The try cannot start: not a git working tree, a suite it cannot judge, data it cannot read."""


class ApiRecords:
    """The suite's recorded evaluations, read through the data API."""

    transient = (httpx.HTTPError, DataApiError)

    def __init__(self, client: Client, suite: str, passing: list[dict]):
        self.client, self.suite = client, suite
        self._passing = [(p["evaluation_key"], json.dumps(p["commits"], sort_keys=True)) for p in passing]
        self._results: dict[str, dict | None] = {}

    def passing(self, suite: str) -> list[tuple[str, str]]:
        return self._passing if suite == self.suite else []

    def result(self, key: str) -> dict | None:
        if key not in self._results:
            try:
                self._results[key] = self.client.evaluation_result(self.suite, key)
            except DataApiError as error:
                if error.status != 404:
                    raise
                self._results[key] = None
        return self._results[key]

    def predictions(self, key: str) -> pd.DataFrame:
        return self.client.evaluation_predictions(self.suite, key)


@dataclasses.dataclass(frozen=True)
class TreeKey:
    """The key a working tree is judged under: its HEAD's, marked when the tree holds changes.

    A clean tree is its HEAD commit, so HEAD is not its own baseline, as on the server; a tree
    with changes is a new candidate, whose nearest passed ancestor may be HEAD itself.
    """

    key: EvaluationKey
    dirty: bool

    def __str__(self) -> str:
        return f"{self.key}~uncommitted" if self.dirty else str(self.key)


class WorkingTree:
    """A git working tree as it is on disk, tracked and untracked files alike (not ignored ones)."""

    def __init__(self, path: str | Path):
        start = Path(path).resolve()
        try:
            self.root = Path(self._git(start, "rev-parse", "--show-toplevel").strip())
            self.head = self._git(self.root, "rev-parse", "--verify", "HEAD^{commit}").strip()
        except TryError as error:
            raise TryError(f"{start}: not a git working tree with a commit ({error})") from None
        self.dirty = bool(self._git(self.root, "status", "--porcelain", "--untracked-files=normal").strip())

    @staticmethod
    def _git(cwd: Path, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TryError(f"`git {' '.join(args)}` failed: {done.stderr.strip()}")
        return done.stdout

    def files(self) -> list[str]:
        listed = self._git(self.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        # A tracked file deleted in the tree is gone from the candidate too.
        return [name for name in listed.split("\0") if name and (self.root / name).is_file()]


@dataclasses.dataclass
class WorkingTreeCheckout(Checkout):
    """A checkout whose contract repository is the working tree rather than a commit."""

    tree: WorkingTree

    def contract_text(self) -> str | None:
        path = self.tree.root / CONTRACT_FILE
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def export(self, directory: Path) -> list[Path]:
        target = directory / self.suite.contract_repository
        for name in self.tree.files():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.tree.root / name, target / name)
        target.mkdir(parents=True, exist_ok=True)
        return [target]

    def where(self, path: str | None = None) -> str:
        state = "working tree with uncommitted changes" if self.tree.dirty else "working tree, clean"
        inside = f":{path}" if path else ""
        return f"{self.key} ({self.tree.root}{inside}, {state})"


@dataclasses.dataclass
class TryResult:
    """The verdict on a working tree, as the server would give it for its commit."""

    suite: str
    key: str
    status: str
    reasons: list[str]
    metrics: dict[str, dict]
    baseline_key: str | None = None
    prediction_diff: dict | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    data: dict = dataclasses.field(default_factory=dict)
    changed: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    stage: str | None = None
    traceback: str = ""
    fetched: Fetched = dataclasses.field(default_factory=Fetched)
    seconds: float = 0.0
    html_path: Path | None = None

    @property
    def exit_code(self) -> int:
        return {"passed": 0, "regressed": 1}.get(self.status, 2)

    def as_json(self) -> dict:
        return {
            "suite": self.suite,
            "evaluation_key": self.key,
            "status": self.status,
            "reasons": self.reasons,
            "metrics": self.metrics,
            "baseline_key": self.baseline_key,
            "prediction_diff": self.prediction_diff,
            "notes": self.notes,
            "data": self.data,
            "changed_rows": len(self.changed),
            "stage": self.stage,
            "downloaded": {
                "partitions": len(self.fetched.downloaded),
                "unchanged": len(self.fetched.unchanged),
                "bytes": self.fetched.bytes,
            },
            "seconds": round(self.seconds, 3),
            "report": str(self.html_path) if self.html_path else None,
            "exit_code": self.exit_code,
        }

    def text(self) -> str:
        lines = [f"{self.key}: {self.status}", *(f"- {reason}" for reason in self.reasons)]
        for metric, values in self.metrics.items():
            base = values.get("baseline_value")
            lines.append(
                f"  {metric}: {values['value']:.4f}" + (f" (baseline {base:.4f})" if base is not None else "")
            )
        return "\n".join(lines)

    def html(self) -> str:
        return render_html(self)

    def _repr_html_(self) -> str:
        return self.html()


def _metrics(evaluation: Evaluation) -> dict[str, dict]:
    return {
        metric: {
            "value": c.value,
            "baseline_value": c.baseline_value,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
        }
        for metric, c in evaluation.verdict.comparisons.items()
    }


def changed_rows(evaluation: Evaluation) -> pd.DataFrame:
    """The test rows whose predicted label differs from the baseline's, with the main dataset's columns."""
    if evaluation.baseline_predictions is None:
        return pd.DataFrame()
    mine, theirs = paired_rows(evaluation.outcome.predictions, evaluation.baseline_predictions)
    rows = mine.assign(
        baseline_y_pred=theirs["y_pred"].to_numpy(), baseline_y_score=theirs["y_score"].to_numpy()
    )
    rows = rows[rows["y_pred"].to_numpy() != rows["baseline_y_pred"].to_numpy()]
    contract = evaluation.contract
    main = evaluation.data.frames[contract.dataset]
    features = main.assign(row_id=main[contract.row_id].astype(str)).drop_duplicates("row_id", keep="last")
    return rows.merge(features, on="row_id", how="left").reset_index(drop=True)


def dataset_days(detail: dict, through: str) -> list[str]:
    partitioning = detail.get("partitioning") or {}
    first = partitioning.get("first")
    if not first:
        raise TryError(f"dataset {detail['name']!r}: the data API gives no first day for its partitions")
    day, last = date.fromisoformat(first), date.fromisoformat(through)
    days = []
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def load_data(
    client: Client, contract: Contract, where: str, cache: PartitionCache, through: str | None = None
) -> EvaluationData:
    """The contract's datasets through `through` (default: the newest materialized day), read
    through the partition cache and made the frames the warehouse would give."""
    details = {}
    for name in contract.datasets:
        try:
            details[name] = client.dataset(name)
        except DataApiError as error:
            if error.status != 404:
                raise
            raise EvaluationFailed(
                f"{where}: data.dataset/join names {name!r}, which the data API does not serve to this token "
                f"({error.detail})",
                "contract",
            ) from error
    main = details[contract.dataset]
    if (main.get("partitioning") or {}).get("kind") != "daily":
        raise EvaluationFailed(
            f"{where}: data.dataset {contract.dataset!r} is not partitioned by day", "contract"
        )
    through = through or main["partitioning"].get("latest")
    if not through:
        raise EvaluationFailed(
            f"{where}: dataset {contract.dataset!r} has no materialized day yet", "contract"
        )
    try:
        date.fromisoformat(through)
    except ValueError:
        raise TryError(f"--through {through!r} is not a day like 2013-01-31") from None
    frames, fetched = {}, Fetched()
    for name, detail in details.items():
        daily = (detail.get("partitioning") or {}).get("kind") == "daily"
        table = cache.table(name, dataset_days(detail, through) if daily else None)
        for part in ("downloaded", "unchanged", "absent"):
            getattr(fetched, part).extend(f"{name}/{p}" for p in getattr(cache.last, part))
        fetched.bytes += cache.last.bytes
        if table.num_columns == 0:
            raise EvaluationFailed(f"{where}: dataset {name!r} has no rows through {through}", "contract")
        frame = conformed(table.to_pandas(), {c["name"]: c["type"] for c in detail["columns"]})
        # The warehouse reads each dataset in its primary key's order; the data version depends on it.
        frames[name] = frame.sort_values(list(detail["primary_key"]), kind="mergesort", ignore_index=True)
    cache.last = fetched
    return evaluation_data(frames, through, contract.test_days)


def _suite(client: Client, name: str) -> tuple[Suite, list[dict]]:
    try:
        found = client.suite(name)
    except DataApiError as error:
        if error.status == 404:
            raise TryError(f"the data API knows no suite {name!r} (or this token may not read it)") from None
        raise
    suite = Suite.model_validate({**found["settings"], "name": name})
    if len(suite.repositories) != 1:
        raise TryError(
            f"suite {name!r} combines repositories {list(suite.repositories)}; a try judges one working "
            "tree, so it serves suites of one repository"
        )
    return suite, found["passing"]


def try_tree(
    path: str | Path,
    suite_name: str,
    client: Client,
    *,
    through: str | None = None,
    output: OutputLog | None = None,
    cache_dir: Path | None = None,
) -> TryResult:
    """Judge the working tree at `path` by `suite_name` as the server would judge its commit."""
    started = time.perf_counter()
    tree = WorkingTree(path)
    suite, passing = _suite(client, suite_name)
    name = suite.contract_repository
    mirrors = Path(tempfile.gettempdir())  # a local repository needs no mirror

    def repository(spec) -> GitRepository:
        return GitRepository(str(tree.root), mirrors, spec.name)

    local = repository(suite.repository(name))
    try:
        head = local.commit(tree.head)
    except GitError as error:
        raise TryError(str(error)) from None
    key = TreeKey(EvaluationKey(suite_name, ((name, tree.head),)), tree.dirty)
    checkout = WorkingTreeCheckout(key, suite, {name: local}, {name: head}, tree)  # type: ignore[arg-type]
    records = ApiRecords(client, suite_name, passing)
    cache = PartitionCache(client, cache_dir)
    try:
        declared, contract = declared_and_pinned(checkout)
        data, outcome = run_commit(
            checkout,
            contract,
            lambda: load_data(client, contract, checkout.where(CONTRACT_FILE), cache, through),
            suite.limits,
            output=output,
        )
        evaluation = judged(
            checkout, declared, contract, data, outcome, {suite_name: suite}, repository, records
        )
    except EvaluationFailed as failure:
        return TryResult(
            suite_name,
            str(key),
            FAILED,
            [str(failure)],
            {},
            stage=failure.stage,
            traceback=failure.traceback_text,
            fetched=cache.last,
            seconds=time.perf_counter() - started,
        )
    diff = evaluation.diff
    return TryResult(
        suite_name,
        str(key),
        evaluation.status,
        list(evaluation.verdict.reasons),
        _metrics(evaluation),
        evaluation.baseline_key,
        {"outcome": diff.outcome, "sentence": diff.sentence, "share": diff.share, "changed": diff.changed},
        list(evaluation.notes),
        {
            "through": data.data_through,
            "split_at": data.split_at.isoformat(),
            "data_version": data.data_version,
            "rows": data.rows,
            "train_rows": outcome.train_rows,
            "test_rows": outcome.test_rows,
        },
        changed_rows(evaluation),
        fetched=cache.last,
        seconds=time.perf_counter() - started,
    )


def frames_for(
    client: Client, suite_name: str, repository: str | Path = ".", *, through: str | None = None
) -> dict[str, pd.DataFrame]:
    """What the contract's feature function receives in a try of `repository` by `suite_name`."""
    tree = WorkingTree(repository)
    suite, _ = _suite(client, suite_name)
    checkout = WorkingTreeCheckout(
        TreeKey(EvaluationKey(suite_name, ((suite.contract_repository, tree.head),)), tree.dirty),
        suite,
        {},
        {},
        tree,
    )
    _, contract = declared_and_pinned(checkout)
    where = checkout.where(CONTRACT_FILE)
    data = load_data(client, contract, where, PartitionCache(client), through)
    return heldout.split(contract, data.frames, data.split_at, where).frames


def try_model(
    path: str | Path = ".",
    suite: str | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    through: str | None = None,
) -> TryResult:
    """From a notebook: the working tree's verdict, metrics and changed rows; shown inline.

    The suite is `suite`, else `$COLLAB_SUITE`; the data API is `url`/`token`, else
    `$COLLAB_API_URL`/`$COLLAB_API_TOKEN`.
    """
    suite = suite or os.environ.get(SUITE_ENV)
    if not suite:
        raise TryError(f"name the suite: try_model('.', suite='...') or set ${SUITE_ENV}")
    with Client(url, token) as client:
        return try_tree(path, suite, client, through=through)


def write_report(result: TryResult, path: Path | None = None) -> Path:
    """The evaluation report as one HTML file (default: in the cache folder, never the working tree)."""
    if path is None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in result.key)
        path = cache_root() / "reports" / f"{safe}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result), encoding="utf-8")
    result.html_path = path
    return path


def render_html(result: TryResult) -> str:
    """One self-contained page: nothing loaded from elsewhere, no script."""
    e = html.escape
    colour = {"passed": "#1a7f37", "regressed": "#b35900"}.get(result.status, "#c62828")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{e(result.key)}: {e(result.status)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>",
        f"<h1>{e(result.key)}: <span style='color:{colour}'>{e(result.status)}</span></h1>",
        "<h2>Gates</h2><ul>",
        *(f"<li>{e(reason)}</li>" for reason in result.reasons),
        "</ul>",
    ]
    if result.metrics:
        frame = pd.DataFrame(result.metrics).T.rename_axis("metric")
        parts += ["<h2>Metrics</h2>", frame.to_html(float_format=lambda v: f"{v:.4f}", na_rep="")]
    if result.prediction_diff:
        parts.append(f"<h2>Prediction diff</h2><p>{e(result.prediction_diff['sentence'])}</p>")
    if result.data:
        parts += [
            "<h2>Data</h2><ul>",
            *(f"<li>{e(k)}: {e(str(v))}</li>" for k, v in result.data.items()),
            "</ul>",
        ]
    if result.notes:
        parts += ["<h2>Notes</h2><ul>", *(f"<li>{e(note)}</li>" for note in result.notes), "</ul>"]
    if not result.changed.empty:
        shown = result.changed.head(SHOWN_ROWS)
        parts += [
            f"<h2>Changed rows ({len(result.changed)}, {len(shown)} shown)</h2>",
            shown.to_html(index=False, na_rep=""),
        ]
    if result.traceback:
        parts.append(f"<h2>Traceback ({e(result.stage or '')})</h2><pre>{e(result.traceback)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
