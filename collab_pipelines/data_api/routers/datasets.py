"""`/v1/datasets`: what there is, how fresh it is, whether its checks pass, and its lineage."""

from fastapi import APIRouter

from collab_pipelines.data_api.auth import TokenEntry
from collab_pipelines.data_api.catalog import DatasetCatalog
from collab_pipelines.data_api.deps import PREFIX, PROTECTED, Config, DatasetFromPath, Grant
from collab_pipelines.data_api.models import (
    Column,
    DatasetDetail,
    DatasetList,
    DatasetSummary,
    LastMaterialization,
    Lineage,
    Partitioning,
)
from collab_pipelines.data_api.problems import problem_responses
from collab_pipelines.warehouse.datasets import Dataset

router = APIRouter(prefix=f"{PREFIX}/datasets", tags=["datasets"], dependencies=PROTECTED)


@router.get(
    "",
    response_model=DatasetList,
    summary="Every dataset: description, columns, partitioning, freshness, checks, owners",
    responses=problem_responses(401),
)
def list_datasets(config: Config, grant: Grant) -> DatasetList:
    catalog = config.catalog
    shown = sorted(
        (d for d in catalog.datasets.values() if grant.scope.allows_dataset(d)), key=lambda d: d.name
    )
    listing = DatasetList(datasets=[summary(catalog, d) for d in shown])
    config.audit.record(grant.name, "datasets", datasets=[d.name for d in shown], rows=len(shown))
    return listing


@router.get(
    "/{name}",
    response_model=DatasetDetail,
    summary="One dataset, with its upstream and downstream assets",
    responses=problem_responses(400, 401, 404),
)
def get_dataset(dataset: DatasetFromPath, config: Config, grant: Grant) -> DatasetDetail:
    catalog = config.catalog
    lineage = catalog.lineage(dataset)
    if lineage:
        lineage = {side: visible(catalog, grant, assets) for side, assets in lineage.items()}
    detail = DatasetDetail(
        **summary(catalog, dataset).model_dump(), lineage=Lineage(**lineage) if lineage else None
    )
    config.audit.record(grant.name, "dataset", dataset=dataset.name)
    return detail


def visible(catalog: DatasetCatalog, grant: TokenEntry, assets: list[dict]) -> list[dict]:
    """Lineage as the token may see it: no dataset outside its scope, nor an asset writing only such."""
    kept = []
    for asset in assets:
        names = [n for n in asset["datasets"] if grant.scope.allows_dataset(catalog.datasets[n])]
        if names or not asset["datasets"]:
            kept.append({**asset, "datasets": names})
    return kept


def summary(catalog: DatasetCatalog, dataset: Dataset) -> DatasetSummary:
    materialization = catalog.latest_materialization(dataset)
    return DatasetSummary(
        name=dataset.name,
        description=dataset.description,
        pattern=dataset.pattern,
        asset_key=dataset.asset_key,
        owners=list(dataset.owners),
        columns=[Column(name=c, type=t) for c, t in dataset.columns.items()],
        primary_key=list(dataset.primary_key),
        partitioning=partitioning(catalog, dataset),
        last_materialization=LastMaterialization(
            timestamp=materialization.when,
            run_id=materialization.run_id,
            partition=materialization.partition,
            data_version=materialization.data_version,
        )
        if materialization
        else None,
        row_count=catalog.row_count(dataset),
        checks=catalog.check_results(dataset),
        links={"self": f"{PREFIX}/datasets/{dataset.name}", "rows": f"{PREFIX}/datasets/{dataset.name}/rows"},
    )


def partitioning(catalog: DatasetCatalog, dataset: Dataset) -> Partitioning | None:
    if not dataset.partitioning or not dataset.partition_column:
        return None
    materialized = catalog.materialized_partitions(dataset)
    daily = dataset.partitioning == "daily"
    first, _end = catalog.partition_bounds(dataset)
    return Partitioning(
        kind="daily" if daily else "dynamic",
        column=dataset.partition_column,
        dynamic_name=None if daily else dataset.partitioning.partition(":")[2] or None,
        first=first.isoformat() if daily and first else None,
        materialized=len(materialized),
        latest=catalog.latest_partition(dataset, materialized),
    )
