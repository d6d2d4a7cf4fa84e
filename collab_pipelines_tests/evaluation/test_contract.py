"""The model-repository contract: a good file parses, and each mistake is named."""

import pytest

from collab_pipelines.evaluation.contract import ContractError, parse_contract

GOOD = """
[model]
entry_point = "model:build"

[data]
dataset = "flights"
join = ["weather"]
time_column = "sched_dep_at"
target = "delayed"
features = "features:build"

[evaluation]
metrics = ["roc_auc", "accuracy"]
test_days = 5

[gates.roc_auc]
min = 0.55
max_drop = 0.01
"""


def test_a_good_contract():
    contract = parse_contract(GOOD, "repo@abc1234:collab.toml")
    assert contract.datasets == ("flights", "weather")
    assert contract.metrics == ("roc_auc", "accuracy")
    assert contract.gates["roc_auc"].max_drop == 0.01 and contract.gates["roc_auc"].min == 0.55
    assert contract.test_days == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "repo@abc1234:collab.toml: no collab.toml in this commit"),
        ("[model\nentry_point=1", "not valid TOML"),
        (
            GOOD.replace('entry_point = "model:build"', 'entry_point = "model.build"'),
            "field 'model.entry_point': 'model.build' is not 'module:function'",
        ),
        (GOOD.replace('entry_point = "model:build"', ""), "field 'model.entry_point': missing"),
        (GOOD.replace('dataset = "flights"', ""), "field 'data.dataset': missing"),
        (GOOD.replace('"roc_auc", "accuracy"', '"roc_auc", "happiness"'), "unknown metric 'happiness'"),
        (GOOD.replace("test_days = 5", "test_days = 0"), "field 'evaluation.test_days'"),
        (
            GOOD.replace("[gates.roc_auc]", "[gates.f1]"),
            "field 'gates.f1': gates a metric that is not computed",
        ),
        (GOOD.replace("max_drop = 0.01", 'max_drop = "a little"'), "field 'gates.roc_auc.max_drop'"),
    ],
)
def test_mistakes_are_named(text, message):
    with pytest.raises(ContractError) as raised:
        parse_contract(text, "repo@abc1234:collab.toml")
    assert message in str(raised.value)
    assert "repo@abc1234:collab.toml" in str(raised.value)


def test_slices_are_part_of_the_contract():
    # The evaluation report shows metrics per slice value; a contract naming slices must still
    # evaluate, and a misspelled key beside it is still refused.
    parse_contract(
        GOOD.replace('join = ["weather"]', 'join = ["weather"]\nslices = ["origin"]'), "repo@abc:collab.toml"
    )
    with pytest.raises(ContractError, match="field 'data.slice'"):
        parse_contract(GOOD.replace('join = ["weather"]', 'slice = ["origin"]'), "repo@abc:collab.toml")
