"""``tissuebench describe``: numbers under the counting convention, clear errors with exit 2."""

import json

import pytest

from tissuebench.cli import main


def _describe(capsys, *args):
    rc = main(["describe", *args, "--json"])
    assert rc == 0
    return json.loads(capsys.readouterr().out)


def test_describe_paper_resnet20(capsys):
    d = _describe(capsys, "resnet20_paper", "--num-classes", "1000", "--input-size", "32")
    assert d["params"] == 8_518_952 and d["flops"] == 2 * d["macs"] == 93_921_280


def test_describe_tissue_options_and_reductions(capsys):
    d = _describe(capsys, "tissue_resnet20_paper", "--set", "replace=ours_r", "--set", "seed=4")
    assert d["tissue_options"]["replace"] == "ours_r" and d["tissue_options"]["seed"] == 4
    assert d["dense"]["model"] == "resnet20_paper"
    assert d["params_reduction_pct"] == pytest.approx(36.10, abs=0.01)


def test_describe_mlp_respects_input_size(capsys):
    d = _describe(capsys, "mlp", "--in-channels", "1", "--input-size", "28")
    assert d["params"] == 784 * 500 + 500 + 500 * 300 + 300 + 300 * 10 + 10
    assert d["macs"] == 784 * 500 + 500 * 300 + 300 * 10


def test_describe_text_output(capsys):
    assert main(["describe", "tissue_resnet20", "--set", "units=2-8-2"]) == 0
    out = capsys.readouterr().out
    assert "TissueNet: units 2-8-2" in out and "layer2.0" in out and "= 2 x MACs" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["describe", "resnet57"], "unknown model 'resnet57'"),
        (["describe", "resnet20", "--set", "width=2"], "does not take option"),
        (["describe", "tissue_resnet20", "--set", "replace=7"], "out of range"),
        (["describe", "tissue_resnet20", "--set", "novalue"], "key=value"),
    ],
)
def test_describe_errors_exit_2(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_describe_mlp_defaults_to_the_papers_input(capsys):
    d = _describe(capsys, "mlp")
    assert (d["in_channels"], d["input_size"], d["params"]) == (1, 28, 545_810)


def test_describe_takes_a_dataset(capsys):
    d = _describe(capsys, "resnet20", "--dataset", "cifar100")
    assert (d["num_classes"], d["in_channels"], d["input_size"]) == (100, 3, 32)
    d = _describe(capsys, "resnet20", "--dataset", "fashion-mnist")
    assert (d["num_classes"], d["in_channels"], d["input_size"]) == (10, 1, 28)
