"""How a benchmark says its goal: the bound, and whether this run met it.

Every figure a benchmark prints against a goal ends with `goal <bound>: met` or
`goal <bound>: NOT met`, so a run of `make bench` shows at a glance what falls short.

Not a benchmark itself: `make bench` runs the scripts whose names do not start with "_".
"""

from __future__ import annotations

# "About 1" (a figure that should not grow with the history): up to a fifth more still counts,
# as two timings of the same work on a shared machine differ by about that much.
ABOUT_ONE = 1.2


def judged(
    value: float,
    *,
    at_most: float | None = None,
    below: float | None = None,
    about_one: bool = False,
    unit: str = "",
) -> str:
    """`goal <= 1.5: met`, `goal < 1 s: NOT met`, `goal about 1, at most 1.2: met`, ..."""
    if about_one:
        at_most, bound = ABOUT_ONE, f"about 1, at most {ABOUT_ONE:g}"
    elif at_most is not None:
        bound = f"<= {at_most:g}{unit}"
    elif below is not None:
        bound = f"< {below:g}{unit}"
    else:
        raise ValueError("a goal needs at_most, below or about_one")
    met = value <= at_most if at_most is not None else value < below
    return f"goal {bound}: {'met' if met else 'NOT met'}"


def judged_flag(met: bool, bound: str) -> str:
    """A goal that is a yes or no (no heavy package loaded), said as the others are."""
    return f"goal {bound}: {'met' if met else 'NOT met'}"
