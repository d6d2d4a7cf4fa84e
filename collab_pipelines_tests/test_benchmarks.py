"""Every benchmark says its goal and whether the run met it (docs/performance.md)."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def goals_module():
    spec = importlib.util.spec_from_file_location("_goals", BENCHMARKS / "_goals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("value", "bound", "said"),
    [
        (1.49, {"at_most": 1.5}, "goal <= 1.5: met"),
        (1.5, {"at_most": 1.5}, "goal <= 1.5: met"),
        (1.51, {"at_most": 1.5}, "goal <= 1.5: NOT met"),
        (0.99, {"below": 1, "unit": " s"}, "goal < 1 s: met"),
        (1.0, {"below": 1, "unit": " s"}, "goal < 1 s: NOT met"),
        (1.19, {"about_one": True}, "goal about 1, at most 1.2: met"),
        (1.21, {"about_one": True}, "goal about 1, at most 1.2: NOT met"),
    ],
)
def test_a_figure_is_said_met_or_not_against_its_goal(value, bound, said):
    assert goals_module().judged(value, **bound) == said


def test_a_goal_needs_a_bound():
    with pytest.raises(ValueError, match="a goal needs"):
        goals_module().judged(1.0)


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("[!_]*.py")))
def test_every_benchmark_says_whether_its_goal_is_met(script):
    source = (BENCHMARKS / script).read_text()
    # Through _goals.judged, or its own "met" / "NOT met" beside the goal it prints.
    assert "judged(" in source or ("NOT met" in source and "goal" in source), (
        f"benchmarks/{script} prints no goal with whether it is met"
    )
