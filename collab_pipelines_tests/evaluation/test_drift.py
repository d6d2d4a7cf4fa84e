"""Drift between a training window and a new day: quiet on the same data, loud and specific on moved data."""

import re

import numpy as np
import pandas as pd
import pytest

from collab_pipelines.evaluation.drift import (
    DriftError,
    column_drift,
    judge_drift,
    population_stability_index,
    watched_columns,
)
from collab_pipelines.evaluation.suites import DriftSpec
from collab_pipelines_tests.test_structure import fresh_import

SPEC = DriftSpec()
DAYS, ROWS_PER_DAY = 60, 200
CARRIERS = ["AA", "B6", "DL", "EV", "UA", "WN"]


def flights(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """A day (or window) of made-up flights: numbers of several shapes, categories, a flag."""
    return pd.DataFrame(
        {
            "id": np.arange(rows) + rng.integers(0, 10**9),
            "sched_dep_at": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 86_400, rows), "s"),
            "dep_delay": rng.normal(12.0, 8.0, rows),
            "distance": rng.lognormal(6.5, 0.6, rows),
            "hour": rng.integers(5, 23, rows),
            "carrier": rng.choice(CARRIERS, rows, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1]),
            "engines": rng.choice([2, 4], rows, p=[0.9, 0.1]),
            "international": rng.random(rows) < 0.2,
        }
    )


def window_and_day(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return flights(DAYS * ROWS_PER_DAY, rng), flights(ROWS_PER_DAY, rng)


FEATURES = ["dep_delay", "distance", "hour", "carrier", "engines", "international"]


@pytest.mark.parametrize("seed", range(20))
def test_a_day_from_the_same_population_is_ok(seed):
    train, day = window_and_day(seed)
    verdict = judge_drift(column_drift(train, day, FEATURES), SPEC)
    assert verdict.severity == "ok", verdict.description
    assert verdict.above_warn == ()
    assert "moved" not in verdict.description


def _mean_shift(day, rng):
    return day.assign(dep_delay=day["dep_delay"] + 8.0)


def _variance_shift(day, rng):
    return day.assign(dep_delay=12.0 + (day["dep_delay"] - 12.0) * 2.5)


def _new_category(day, rng):
    return day.assign(carrier=np.where(rng.random(len(day)) < 0.2, "XYZ", day["carrier"]))


def _goes_empty(day, rng):
    return day.assign(distance=day["distance"].mask(rng.random(len(day)) < 0.4))


def _categories_go_empty(day, rng):
    return day.assign(carrier=day["carrier"].mask(rng.random(len(day)) < 0.3))


@pytest.mark.parametrize(
    ("change", "column", "words"),
    [
        (_mean_shift, "dep_delay", r"mean 1[12]\.\d -> (19|20|21)\.\d, sd [78]\.\d -> [78]\.\d"),
        (_variance_shift, "dep_delay", r"sd [78]\.\d -> (18|19|20|21)\.\d"),
        (_new_category, "carrier", r"^new category 'XYZ' is [12]\d% of the day"),
        (_goes_empty, "distance", r"0% -> [34]\d% empty"),
        (_categories_go_empty, "carrier", r"0% -> [23]\d% empty$"),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_moved_column_fails_the_check_and_is_named_first(change, column, words, seed):
    train, day = window_and_day(seed)
    moved = change(day, np.random.default_rng(seed + 100))
    verdict = judge_drift(column_drift(train, moved, FEATURES), SPEC)
    assert verdict.severity == "error", verdict.description
    assert verdict.above_error == (column,)
    assert verdict.description.startswith(f"{column} moved (PSI "), verdict.description
    detail = verdict.description.split(";")[0].split(": ", 1)[1].removesuffix(")")
    assert re.search(words, detail), verdict.description
    # The others are listed as within, after it.
    assert verdict.description.count(" within (PSI ") == len(FEATURES) - 1


def test_between_the_thresholds_is_a_warning():
    train, day = window_and_day(0)
    moved = day.assign(dep_delay=day["dep_delay"] + 8.0)
    drifts = column_drift(train, moved, FEATURES)
    psi = drifts[0].psi
    verdict = judge_drift(drifts, DriftSpec(warn=psi / 2, error=psi * 2))
    assert (verdict.severity, verdict.above_warn, verdict.above_error) == ("warn", ("dep_delay",), ())
    assert f"> warn {psi / 2:g}" in verdict.description


def test_the_description_goes_worst_first():
    train, day = window_and_day(3)
    moved = day.assign(dep_delay=day["dep_delay"] + 4.0, distance=day["distance"] * 3)
    drifts = column_drift(train, moved, FEATURES)
    assert [d.psi for d in drifts] == sorted((d.psi for d in drifts), reverse=True)
    assert [d.column for d in drifts[:2]] == ["distance", "dep_delay"]
    description = judge_drift(drifts, SPEC).description
    assert description.index("distance moved") < description.index("dep_delay moved")
    assert description.index("dep_delay moved") < description.index("carrier within")


def test_nothing_watched_is_ok_and_says_so():
    verdict = judge_drift([], SPEC)
    assert (verdict.severity, verdict.above_warn) == ("ok", ())
    assert "no column was watched" in verdict.description


def test_the_p_values_ride_along():
    train, day = window_and_day(4)
    by_column = {d.column: d for d in column_drift(train, _mean_shift(day, None), FEATURES)}
    assert (by_column["dep_delay"].test, by_column["carrier"].test) == ("ks", "chi-squared")
    assert by_column["dep_delay"].p_value < 1e-6 < by_column["distance"].p_value
    assert 1e-3 < by_column["carrier"].p_value <= 1


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_psi_is_zero_for_identical_samples_and_grows_with_the_shift(kind):
    rng = np.random.default_rng(7)
    base = rng.normal(0, 1, 20_000)
    if kind == "numeric":
        samples = [base + shift for shift in (0, 0.1, 0.3, 0.6, 1.0, 2.0)]
    else:
        base = np.where(base > 0.5, "high", "low")
        # The share of a new category grows step by step.
        samples = [np.where(rng.random(len(base)) < share, "new", base) for share in (0, 0.02, 0.1, 0.3)]
    values = [population_stability_index(base, sample) for sample in samples]
    assert values[0] == pytest.approx(0, abs=1e-12)
    assert (np.diff(values) > 0).all(), values


@pytest.mark.parametrize(
    ("actual", "kind"),
    [([np.nan] * 100, "numeric"), ([None] * 100, "categorical")],
)
def test_a_column_arriving_empty_has_drifted(actual, kind):
    expected = np.arange(1000.0) if kind == "numeric" else np.array(["a", "b"] * 500, dtype=object)
    assert population_stability_index(expected, actual, kind=kind) > SPEC.error


def test_a_small_days_noise_stays_well_under_the_warning():
    # Two samples of one population differ by about (bins - 1) / rows of PSI: ten bins on a
    # 200-row day would sit near 0.05, half the warning, so a small day gets fewer bins.
    values = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        train, day = (pd.DataFrame({"x": rng.normal(0, 1, rows)}) for rows in (12_000, 200))
        values.append(column_drift(train, day, ["x"])[0].psi)
    assert np.mean(values) < 0.03, np.mean(values)


@pytest.mark.parametrize(("stray", "severity"), [(2, "ok"), (40, "error")])
def test_a_few_stray_rows_of_a_new_value_are_not_drift(stray, severity):
    train, day = window_and_day(5)
    day = day.assign(carrier=["XYZ"] * stray + list(day["carrier"][stray:]))
    verdict = judge_drift(column_drift(train, day, ["carrier"]), SPEC)
    assert verdict.severity == severity, verdict.description
    assert "new category 'XYZ'" in verdict.drifts[0].detail


def test_values_beyond_the_training_range_count():
    train = np.linspace(0, 1, 5000)
    # Every day value is past the window's maximum: an open outer bin catches them all.
    assert population_stability_index(train, np.full(500, 5.0)) > 1


@pytest.mark.parametrize(
    ("spec", "exclude", "expected"),
    [
        # Ids (unique per row) and times are left out without being named.
        (DriftSpec(), set(), ["dep_delay", "distance", "hour", "carrier", "engines", "international"]),
        (DriftSpec(), {"dep_delay", "hour"}, ["distance", "carrier", "engines", "international"]),
        (DriftSpec(columns=("carrier", "id")), {"carrier"}, ["carrier", "id"]),
    ],
)
def test_watched_columns(spec, exclude, expected):
    train, _ = window_and_day(0)
    assert watched_columns(train, spec, exclude) == expected


def test_a_watched_column_the_dataset_lacks_is_named():
    train, _ = window_and_day(0)
    with pytest.raises(DriftError, match=r"drift.columns names \['dep_dealy'\].*'dep_delay'"):
        watched_columns(train, DriftSpec(columns=("carrier", "dep_dealy")), set())


@pytest.mark.parametrize("missing_from", ["train", "day"])
def test_column_drift_names_a_missing_column(missing_from):
    train, day = window_and_day(0)
    frames = {"train": train, "day": day}
    frames[missing_from] = frames[missing_from].drop(columns="carrier")
    name = "training window" if missing_from == "train" else "day"
    with pytest.raises(DriftError, match=rf"\['carrier'\] are not in the {name}"):
        column_drift(frames["train"], frames["day"], FEATURES)


def test_an_empty_day_is_refused():
    train, day = window_and_day(0)
    with pytest.raises(DriftError, match="the day has no rows"):
        column_drift(train, day.iloc[:0], FEATURES)


def test_the_module_imports_where_dagster_is_not_installed():
    loaded = fresh_import(
        "import sys\nsys.modules['dagster'] = None\nimport collab_pipelines.evaluation.drift"
    )
    assert "collab_pipelines.evaluation.drift" in loaded
    assert not {name for name in loaded if name.startswith(("dagster.", "sklearn"))}
