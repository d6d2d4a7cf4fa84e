"""What one token may read: datasets, evaluation suites and reports, each by names or globs.

A token outside whose scope something lies is told it does not exist (a 404 like a missing
one's), so a scoped token learns no name it was not given. Globs are `fnmatch` patterns matched
case-sensitively; `*` grants every name and no glob grants none.
"""

from dataclasses import dataclass
from fnmatch import fnmatchcase

from collab_pipelines.warehouse.datasets import Dataset

EVERYTHING = ("*",)
NOTHING: tuple[str, ...] = ()
# The pattern whose datasets hold every suite's rows side by side (evaluation_results, ...).
EVALUATION_PATTERN = "evaluation"


def matches(globs: tuple[str, ...], name: str) -> bool:
    return any(fnmatchcase(name, glob) for glob in globs)


@dataclass(frozen=True)
class Scope:
    datasets: tuple[str, ...] = EVERYTHING
    suites: tuple[str, ...] = EVERYTHING
    reports: tuple[str, ...] = EVERYTHING

    @property
    def full(self) -> bool:
        return self == FULL

    @property
    def every_suite(self) -> bool:
        return "*" in self.suites

    def allows_dataset(self, dataset: Dataset) -> bool:
        # An evaluation dataset is one table for every suite: granting it by name alone would
        # hand a token limited to one suite every other suite's results.
        if dataset.pattern == EVALUATION_PATTERN and not self.every_suite:
            return False
        return matches(self.datasets, dataset.name)

    def allows_suite(self, suite: str) -> bool:
        return matches(self.suites, suite)

    def allows_report(self, asset_key: str, partition: str | None) -> bool:
        """A report by asset key; one partitioned by evaluation also needs its suite."""
        if not matches(self.reports, asset_key):
            return False
        suite = evaluation_suite(partition)
        return suite is None or self.allows_suite(suite)


FULL = Scope()


def evaluation_suite(key: str | None) -> str | None:
    """The suite an evaluation key names (`delays:model@1a2b3c4d` → `delays`), None for other keys.

    Reports are partitioned by day, by evaluation key or not at all; only an evaluation key
    holds a colon.
    """
    if key is None or ":" not in key:
        return None
    return key.split(":", 1)[0]
