"""The held-out split, kept by the harness: the candidate never holds a held-out label.

No Dagster. The suite (or the contract, where the suite leaves it) names the dataset, its time
and row id columns, and the target: a column of the dataset, used as it is (0/1) or compared
with a threshold (`above`). From the dataset as the warehouse has it, the harness computes
- the labels of every row with a target value: rows before the split train, rows from the
  split on are held out and scored;
- the frames the feature function receives: every dataset whole, except that in the held-out
  rows of the main dataset the target's column and the `withheld` columns (anything that gives
  the target away, such as an arrival time beside a departure delay) are empty.

The candidate gets the training rows' labels and the held-out rows' ids; the parent keeps the
held-out labels and joins the candidate's predictions to them by row id.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from collab_pipelines.evaluation.contract import Contract


class SplitError(ValueError):
    """The contract names a column the dataset lacks, or a target that is not 0/1."""


@dataclass
class HeldOut:
    frames: dict[str, pd.DataFrame]
    """What the feature function receives: the held-out rows' target and withheld columns empty."""
    train_labels: pd.DataFrame
    """row_id, y: the training rows' labels, handed to the candidate."""
    test_labels: pd.DataFrame
    """row_id, y_true: the held-out rows' labels, never handed over."""


def labels(contract: Contract, dataset: pd.DataFrame, where: str) -> pd.Series:
    """The target of every row (NaN where the row has no value to learn or score)."""
    values = dataset[contract.target]
    if contract.target_above is not None:
        numbers = pd.to_numeric(values, errors="coerce")
        return (numbers > contract.target_above).astype(float).where(numbers.notna())
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    odd = numbers.dropna()
    odd = odd[~odd.isin((0.0, 1.0))]
    if not odd.empty:
        raise SplitError(
            f"{where}: target column {contract.target!r} holds values other than 0 and 1 "
            f"(e.g. {odd.head(3).tolist()}); give the suite's target a threshold: "
            f"target: {{column: {contract.target}, above: ...}}"
        )
    return numbers


def split(
    contract: Contract,
    frames: Mapping[str, pd.DataFrame],
    split_at: pd.Timestamp,
    where: str,
    *,
    every_row: bool = False,
) -> HeldOut:
    """The split at `split_at`. With `every_row` (predictions for a new day), every row from the
    split on is to be predicted, with or without a label yet; its `y_true` is NaN where none."""
    dataset = frames[contract.dataset]
    for field, column in (
        ("target", contract.target),
        ("time_column", contract.time_column),
        ("row_id", contract.row_id),
        *(("withheld", column) for column in contract.withheld),
    ):
        if column not in dataset.columns:
            raise SplitError(
                f"{where}: data.{field} names {column!r}, which is not a column of dataset "
                f"{contract.dataset!r} (columns: {sorted(map(str, dataset.columns))})"
            )
    target = labels(contract, dataset, where)
    held_out = (pd.to_datetime(dataset[contract.time_column]) >= split_at).to_numpy()
    known = target.notna().to_numpy()
    ids = dataset[contract.row_id]
    masked = dataset.copy()
    hidden = list(dict.fromkeys([contract.target, *contract.withheld]))
    for column in hidden:
        # Integers and booleans take pandas' nullable kinds, so an empty value keeps the column's type.
        kind = masked[column].dtype.kind
        if kind in "iu":
            masked[column] = masked[column].astype("Int64")
        elif kind == "b":
            masked[column] = masked[column].astype("boolean")
        masked.loc[held_out, column] = None
    return HeldOut(
        frames={**frames, contract.dataset: masked},
        train_labels=pd.DataFrame(
            {"row_id": ids[~held_out & known].to_numpy(), "y": target[~held_out & known].to_numpy(np.float64)}
        ),
        test_labels=pd.DataFrame(
            {
                "row_id": ids[held_out & (known | every_row)].to_numpy(),
                "y_true": target[held_out & (known | every_row)].to_numpy(np.float64),
            }
        ),
    )
