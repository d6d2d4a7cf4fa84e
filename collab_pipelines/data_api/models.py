"""The response bodies, as pydantic models: they are the OpenAPI schemas clients rely on."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from collab_pipelines.warehouse.columns import ColumnType


class Column(BaseModel):
    name: str
    type: ColumnType


class Partitioning(BaseModel):
    kind: Literal["daily", "dynamic"]
    column: str = Field(description="The column holding each row's partition key.")
    dynamic_name: str | None = Field(
        None, description="The dynamic partitions' name, for dynamic partitioning."
    )
    first: str | None = Field(None, description="The first partition a daily dataset can have.")
    materialized: int = Field(description="How many partitions have been materialized.")
    latest: str | None = Field(
        None, description="The newest materialized partition (what partition=latest reads)."
    )


class LastMaterialization(BaseModel):
    timestamp: datetime
    run_id: str
    partition: str | None
    data_version: str | None


class CheckResult(BaseModel):
    name: str
    status: str = Field(description="never_run, planned, succeeded or failed.")
    passed: bool | None
    severity: str | None
    description: str | None
    partition: str | None
    timestamp: datetime | None


class AssetRef(BaseModel):
    asset_key: str
    datasets: list[str] = Field(description="The datasets this asset writes, if any.")


class Lineage(BaseModel):
    upstream: list[AssetRef]
    downstream: list[AssetRef]
    all_upstream: list[AssetRef]
    all_downstream: list[AssetRef]


class DatasetSummary(BaseModel):
    name: str
    description: str
    pattern: str = Field(
        description="The collaboration pattern that writes it: exports, intake, evaluation, ..."
    )
    asset_key: str
    owners: list[str]
    columns: list[Column]
    primary_key: list[str]
    partitioning: Partitioning | None
    last_materialization: LastMaterialization | None
    row_count: int | None = Field(
        description="Rows in the warehouse now; null if the table does not exist yet."
    )
    checks: list[CheckResult]
    links: dict[str, str]


class DatasetDetail(DatasetSummary):
    lineage: Lineage | None = Field(description="Null when the project's definitions could not be loaded.")


class DatasetList(BaseModel):
    datasets: list[DatasetSummary]


class RowsPage(BaseModel):
    """The JSON form of a page of rows; the other formats carry next_cursor in a header."""

    dataset: str
    columns: list[Column]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    data: list[dict[str, Any]]


class Evaluation(BaseModel):
    evaluation_key: str
    result: dict[str, Any]
    metrics: list[dict[str, Any]]


class EvaluationsByCommit(BaseModel):
    commit: str
    evaluations: list[Evaluation]


class Health(BaseModel):
    status: Literal["ok"]


class ChampionChange(BaseModel):
    """One promotion or demotion of a suite's champion (a row of champion_history)."""

    action: Literal["promote", "demote"]
    evaluation_key: str | None = Field(description="The new champion; null on a demotion.")
    previous_key: str | None = Field(description="The champion before; null if there was none.")
    commits: dict[str, str] = Field(description="The new champion's commits: repository to SHA.")
    by: str = Field(description="Who: a person, or policy:last_passing.")
    reason: str
    run_id: str
    at: datetime = Field(description="When, in UTC.")


class SuiteChampion(BaseModel):
    suite: str
    champion: ChampionChange | None = Field(
        description="The promotion that made the current champion; null if the suite has none."
    )
    history: list[ChampionChange] = Field(description="Every promotion and demotion, oldest first.")


class PassingEvaluation(BaseModel):
    evaluation_key: str
    commits: dict[str, str] = Field(description="Repository to SHA.")


class SuiteSettings(BaseModel):
    """What a data scientist's local try needs of a suite to judge as the server does."""

    suite: str
    settings: dict[str, Any] = Field(
        description="The suite's settings that decide a verdict: pinned fields, gates, allowed_env, "
        "contract_changes, baseline, limits, unsandboxed, and its repositories' names (not their "
        "locations)."
    )
    passing: list[PassingEvaluation] = Field(description="Every passed evaluation: the baseline candidates.")


class EvaluationResult(BaseModel):
    evaluation_key: str
    result: dict[str, Any] = Field(description="The evaluation's row of evaluation_results.")
