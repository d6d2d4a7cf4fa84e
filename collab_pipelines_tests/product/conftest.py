"""The shop (collab_pipelines_tests/product/team.py) set up for daily predictions."""

import pytest
import yaml

from collab_pipelines import settings
from collab_pipelines_tests.evaluation.conftest import Repo
from collab_pipelines_tests.product import team

TRAIN_DAYS = 5


@pytest.fixture
def shop(tmp_path, state_dir, monkeypatch):
    source_url = f"sqlite:///{tmp_path / 'shop.db'}"
    frame = team.create_source(source_url)
    repo = Repo(tmp_path / "returns-model")
    repo.commit("Baseline returns model", team.MODEL_FILES)
    config = team.write_config(tmp_path / "config", repo.path)
    suites_file = config / "suites.yaml"
    raw = yaml.safe_load(suites_file.read_text())
    raw["suites"]["returns"].update(
        pinned={
            "data": {"dataset": "orders", "time_column": "placed_at", "row_id": "id", "target": "returned"}
        },
        predictions={"train_days": TRAIN_DAYS, "repredict_days": 2},
    )
    suites_file.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv(settings.CONFIG_DIR_ENV, str(config))
    monkeypatch.setenv(team.SOURCE_ENV, source_url)
    monkeypatch.delenv(settings.SUITES_FILE_ENV, raising=False)
    return {"orders": frame, "repo": repo, "suites_file": suites_file}
