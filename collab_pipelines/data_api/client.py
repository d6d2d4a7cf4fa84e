"""The Python client: the data API's datasets and rows as pandas DataFrames.

    from collab_pipelines.data_api import Client
    api = Client("http://127.0.0.1:8020", token="...")      # or $COLLAB_API_URL / $COLLAB_API_TOKEN
    flights = api.rows("flights", partition="latest", filters=[("dep_delay", ">=", 30)])

Pages are fetched as Parquet and joined; a repeated request is revalidated with its ETag, so
polling an unchanged dataset costs a 304 and no rows.
"""

import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Self
from urllib.parse import quote

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

URL_ENV = "COLLAB_API_URL"
TOKEN_ENV = "COLLAB_API_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8020"
_OPERATORS = {
    "==": "eq",
    "=": "eq",
    "!=": "ne",
    "<": "lt",
    "<=": "lte",
    ">": "gt",
    ">=": "gte",
    "eq": "eq",
    "ne": "ne",
    "lt": "lt",
    "lte": "lte",
    "gt": "gt",
    "gte": "gte",
    "in": "in",
}
_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
_MAX_PAGE = 1_000_000

Filters = Mapping[str, Any] | Sequence[tuple[str, str, Any]]


class DataApiError(RuntimeError):
    """The API refused a request; the message is its problem document's detail."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Client:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        page_size: int = 100_000,
        timeout: float = 120.0,
    ):
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise DataApiError(401, f"no token: pass token=... or set ${TOKEN_ENV}")
        self.page_size = page_size
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {token}"}
        )
        self._cache: dict[tuple, tuple[str, pd.DataFrame]] = {}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # -- the catalog ---------------------------------------------------------------------
    def datasets(self) -> pd.DataFrame:
        """One row per dataset: what it holds, who owns it, how fresh it is, whether its checks pass."""
        rows = []
        for item in self.catalog():
            last = item["last_materialization"] or {}
            checks = [c for c in item["checks"] if c["passed"] is not None]
            rows.append(
                {
                    "name": item["name"],
                    "description": item["description"],
                    "pattern": item["pattern"],
                    "owners": ", ".join(item["owners"]),
                    "partitioning": (item["partitioning"] or {}).get("kind"),
                    "latest_partition": (item["partitioning"] or {}).get("latest"),
                    "last_materialized": pd.to_datetime(last.get("timestamp")),
                    "row_count": item["row_count"],
                    "checks_passed": f"{sum(c['passed'] for c in checks)}/{len(checks)}" if checks else None,
                    "columns": ", ".join(c["name"] for c in item["columns"]),
                }
            )
        return pd.DataFrame(rows)

    def catalog(self) -> list[dict]:
        """Every dataset as the server describes it (GET /v1/datasets): columns, partitioning."""
        return self._json("/v1/datasets")["datasets"]

    def dataset(self, name: str) -> dict:
        """Everything about one dataset, with its lineage (upstream and downstream assets)."""
        return self._json(f"/v1/datasets/{name}")

    # -- rows ----------------------------------------------------------------------------
    def rows(
        self,
        name: str,
        *,
        partition: str | None = None,
        partition_from: str | date | None = None,
        partition_to: str | date | None = None,
        columns: Sequence[str] | None = None,
        filters: Filters | None = None,
        sort: Sequence[str] | str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """A dataset's rows as a DataFrame, every page fetched.

        `filters` is a dict (`{"origin": "JFK", "carrier": ["AA", "UA"]}` for equality and
        in-lists) or tuples (`[("dep_delay", ">=", 30)]`). `sort` names columns, `-` first for
        descending. `partition="latest"` reads the newest complete partition.
        """
        params = self._row_params(partition, partition_from, partition_to, columns, filters, sort)
        key = (name, tuple(params))
        cached = self._cache.get(key) if limit is None else None
        pages = self._pages(name, params, limit, cached[0] if cached else None)
        first = next(pages)
        if first is None:
            return cached[1].copy()
        etag, frames = first[0], [first[1], *(frame for _etag, frame in pages)]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if etag and limit is None:
            self._cache[key] = (etag, frame)
        return frame.copy() if etag and limit is None else frame

    def iter_rows(self, name: str, **query) -> Iterator[pd.DataFrame]:
        """The same as `rows`, one DataFrame a page, for results larger than memory."""
        limit = query.pop("limit", None)
        params = self._row_params(
            query.pop("partition", None),
            query.pop("partition_from", None),
            query.pop("partition_to", None),
            query.pop("columns", None),
            query.pop("filters", None),
            query.pop("sort", None),
        )
        if query:
            raise TypeError(f"unknown arguments: {', '.join(query)}")
        for _etag, frame in self._pages(name, params, limit, None):
            yield frame

    def _pages(self, name, params, limit, etag) -> Iterator:
        cursor, fetched = None, 0
        while True:
            size = self.page_size if limit is None else min(self.page_size, limit - fetched)
            page_params = [*params, ("format", "parquet"), ("limit", str(size))]
            if cursor:
                page_params.append(("cursor", cursor))
            headers = {"If-None-Match": etag} if etag and cursor is None else {}
            response = self._http.get(f"/v1/datasets/{name}/rows", params=page_params, headers=headers)
            if response.status_code == 304:
                yield None
                return
            _raise_for_problem(response)
            table = pq.read_table(io.BytesIO(response.content))
            fetched += table.num_rows
            yield response.headers.get("ETag"), table.to_pandas(types_mapper=_PANDAS_TYPES.get)
            cursor = response.headers.get("X-Next-Cursor")
            if not cursor or (limit is not None and fetched >= limit):
                return

    @staticmethod
    def _row_params(partition, partition_from, partition_to, columns, filters, sort) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = []
        for name, value in (
            ("partition", partition),
            ("partition_from", partition_from),
            ("partition_to", partition_to),
        ):
            if value is not None:
                params.append((name, _text(value)))
        if columns:
            params.append(("columns", ",".join(columns)))
        for column, operator, value in _filter_triples(filters):
            params.append(("filter", f"{column}:{operator}:{value}"))
        if sort:
            params.append(("sort", sort if isinstance(sort, str) else ",".join(sort)))
        return params

    # -- evaluation and reports --------------------------------------------------------------
    def evaluations(self, commit: str) -> pd.DataFrame:
        """Every evaluation of a commit, one row each; metrics as `metric/<name>` columns."""
        rows = []
        for evaluation in self._json(f"/v1/evaluations/{commit}")["evaluations"]:
            row = dict(evaluation["result"])
            for metric in evaluation["metrics"]:
                row[f"metric/{metric['metric']}"] = metric["value"]
                row[f"baseline/{metric['metric']}"] = metric.get("baseline_value")
            rows.append(row)
        return pd.DataFrame(rows)

    def suite(self, suite: str) -> dict:
        """A suite's decisive settings and its passed evaluations (what a local try judges by)."""
        return self._json(f"/v1/suites/{_segment(suite)}")

    def evaluation_result(self, suite: str, key: str) -> dict:
        """One evaluation's recorded result: data version, split, contract, verdict."""
        return self._json(f"/v1/suites/{_segment(suite)}/evaluations/{_segment(key)}")["result"]

    def evaluation_predictions(self, suite: str, key: str) -> pd.DataFrame:
        """One evaluation's predictions: row_id, y_true, y_pred, y_score."""
        response = self._http.get(f"/v1/suites/{_segment(suite)}/evaluations/{_segment(key)}/predictions")
        _raise_for_problem(response)
        return pq.read_table(io.BytesIO(response.content)).to_pandas(types_mapper=_PANDAS_TYPES.get)

    def frames_for(self, suite: str, repository: str = ".", *, through: str | None = None) -> dict:
        """The frames the contract's feature function receives in an evaluation of `repository`'s
        working tree by `suite`: every dataset through the newest day (or `through`), the held-out
        days' target and withheld columns empty, read through the local partition cache."""
        from collab_pipelines.evaluation.local_try import frames_for

        return frames_for(self, suite, repository, through=through)

    def raw_rows(self, name: str, params: dict | None, etag: str | None) -> httpx.Response | None:
        """One partition's rows as a Parquet response (or a 304 for `etag`); None if the
        partition was never materialized."""
        query = {**(params or {}), "format": "parquet", "limit": str(_MAX_PAGE)}
        response = self._http.get(
            f"/v1/datasets/{name}/rows", params=query, headers={"If-None-Match": etag} if etag else {}
        )
        if response.status_code == 404 and params and _problem_parameter(response) == "partition":
            return None
        _raise_for_problem(response)
        if response.headers.get("X-Next-Cursor"):
            raise DataApiError(
                413, f"{name} {params}: more than {_MAX_PAGE} rows in one partition; read it with rows()"
            )
        return response

    def report(self, asset_key: str, partition: str | None = None) -> str:
        """The rendered HTML of a report asset's latest materialization (of one partition)."""
        response = self._http.get(
            f"/v1/reports/{asset_key}", params={"partition": partition} if partition is not None else None
        )
        _raise_for_problem(response)
        return response.text

    def _json(self, path: str) -> dict:
        response = self._http.get(path)
        _raise_for_problem(response)
        return response.json()


def _filter_triples(filters: Filters | None) -> list[tuple[str, str, str]]:
    if not filters:
        return []
    items = (
        [(c, "in" if isinstance(v, (list, tuple, set)) else "eq", v) for c, v in filters.items()]
        if isinstance(filters, Mapping)
        else list(filters)
    )
    triples = []
    for column, operator, value in items:
        if operator not in _OPERATORS:
            raise ValueError(
                f"filter on {column!r}: unknown operator {operator!r}; use one of {', '.join(_OPERATORS)}"
            )
        operator = _OPERATORS[operator]
        text = json.dumps([_json_value(v) for v in value]) if operator == "in" else _text(value)
        triples.append((column, operator, text))
    return triples


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    return str(value)


def _json_value(value: Any):
    return value if isinstance(value, (bool, int, float, str)) else _text(value)


def _segment(text: str) -> str:
    return quote(text, safe=":@+")


def _problem_parameter(response: httpx.Response) -> str | None:
    try:
        return response.json().get("parameter")
    except ValueError:
        return None


def _raise_for_problem(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise DataApiError(response.status_code, detail)
