from pathlib import Path

import dagster as dg
from pydantic import Field

from collab_pipelines import settings
from collab_pipelines.evaluation.repos import GitRepository
from collab_pipelines.evaluation.suites import RepositorySpec, Suite, load_suites


class ModelRepositories(dg.ConfigurableResource):
    """The data scientists' repositories, grouped into evaluation suites by a suites file.

    The seam between Dagster and git: the sensor and the assets ask it for suites and
    repositories; tests point it at repositories they create.
    """

    suites_file: str | None = Field(
        default=None,
        description="Path of the suites YAML. Empty means $COLLAB_SUITES_FILE, else suites.yaml "
        "in the project's state folder.",
    )
    mirrors_dir: str | None = Field(
        default=None,
        description="Where remote repositories are mirrored. Empty means git-mirrors/ in the state folder.",
    )

    def suites(self) -> dict[str, Suite]:
        return load_suites(settings.suites_file() if self.suites_file is None else Path(self.suites_file))

    def repository(self, spec: RepositorySpec) -> GitRepository:
        mirrors = Path(self.mirrors_dir) if self.mirrors_dir else settings.state_dir() / "git-mirrors"
        return GitRepository(spec.location, mirrors, spec.name)
