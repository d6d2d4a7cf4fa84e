"""The project's dataset registry: every warehouse table, collected from the patterns that write it.

Like `definitions.py`, this is a composition root: it is the one place that names the
patterns, so the shared `warehouse` layer never imports them. It imports no Dagster, so
the data API and report kernels can read it quickly.
"""

from __future__ import annotations

from collections.abc import Iterable

from collab_pipelines.warehouse.datasets import Dataset


def all_datasets() -> dict[str, Dataset]:
    """Every dataset by name; a name declared by two patterns is an error."""
    from collab_pipelines.evaluation.datasets import DATASETS as evaluation_datasets
    from collab_pipelines.evaluation.datasets import prediction_datasets
    from collab_pipelines.exports.datasets import export_datasets
    from collab_pipelines.intake.datasets import intake_datasets

    return merge_datasets(
        ("exports", export_datasets()),
        ("evaluation", evaluation_datasets),
        ("predictions", prediction_datasets()),
        ("intake", intake_datasets()),
    )


def merge_datasets(*groups: tuple[str, Iterable[Dataset]]) -> dict[str, Dataset]:
    datasets: dict[str, Dataset] = {}
    for pattern, group in groups:
        for dataset in group:
            if dataset.name in datasets:
                raise ValueError(
                    f"{pattern}: dataset {dataset.name!r} is declared twice "
                    f"(also by {datasets[dataset.name].pattern})"
                )
            datasets[dataset.name] = dataset
    return datasets
