"""The plugin author's own test: tissuebench's conformance check on the plugin's method and model."""

from tissuebench.testing import check_method


def test_prune_activation_follows_the_contract():
    report = check_method("prune_activation", model="tiny_cnn", options={"steps": 20, "tolerance": 0.03})
    assert abs(report.achieved - 0.5) <= 0.03 and report.phase == "finetune"
