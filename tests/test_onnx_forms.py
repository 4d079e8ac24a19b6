"""The exact ONNX forms of stacked layers: each form computes the per-unit reference's function on ONNX Runtime
and OpenVINO, the fused operation packs any width, the fastest form is chosen per site and recorded, and both
columns of each runtime reach the latency command and the report."""

import copy
import os
import re

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from benchmarks.measure import runtimes as rt
from tissuenet import create_model
from tissuenet.deploy import fold_bn
from tissuenet.kernels import build
from tissuenet.kernels import onnx as forms
from tissuenet.models.resnet_blocks import BasicBlock
from tissuenet.stacked import StackedLayer

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
RUNTIMES = tuple(rt.SESSIONS)  # onnxruntime, openvino
MISSING = [r for r in RUNTIMES if build.runtime_library(r) is None]
needs_kernel = pytest.mark.skipif(bool(MISSING), reason="no compiler or no AVX2/AVX-512 here")


def test_each_runtime_operation_builds_where_kernels_are_required():
    """CI sets TISSUEBENCH_REQUIRE_KERNELS=1: there a library that fails to build is a failure, not 30 skips."""
    if os.environ.get("TISSUEBENCH_REQUIRE_KERNELS") != "1":
        pytest.skip("kernels not required here")
    assert not MISSING, f"could not build the fused operation for {MISSING}"


def _randomize(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics, so folding them is part of what is checked."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _run(module: nn.Module, x: torch.Tensor, form: str, runtime: str) -> np.ndarray:
    library = build.runtime_library(runtime) if form == "fused_op" else None
    run = rt.SESSIONS[runtime](rt.onnx_bytes(module, x), 2, library)
    return run(np.ascontiguousarray(x.numpy()))


SHAPES = [  # (units, count, stride, final ReLU): widths that fill, pad and straddle the vector lanes
    ("2-4-2", 8, 1, False),
    ("2-4-4", 8, 2, True),
    ("2-8-2", 3, 1, True),
    ("2-4-2", 20, 2, False),
    ("2-2-4", 5, 1, False),
]


@needs_kernel
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("form", forms.FORMS)
@pytest.mark.parametrize("units,count,stride,relu", SHAPES)
def test_each_form_computes_the_per_unit_reference(runtime, form, units, count, stride, relu):
    layer = _randomize(StackedLayer([units] * count, stride=stride, final_relu=relu))
    reference = layer.to_per_unit().eval()
    x = torch.randn(2, layer.in_channels, 9, 10)
    folded, _ = fold_bn(layer)
    got = _run(forms.site_form(folded, folded, False, form), x, form, runtime)
    with torch.no_grad():
        expected = reference(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@needs_kernel
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("stride,width", [(1, 16), (2, 32)])
def test_a_residual_block_as_one_fused_node(runtime, stride, width):
    """The block's shortcut (identity, or 1x1 conv + BN) is the node's residual; add and ReLU inside."""
    from tissuenet.kernels.onnx import FusedSite

    block = _randomize(BasicBlock(16, width, stride, StackedLayer([f"2-4-{2 * width // 16}"] * 8, stride=stride)))
    x = torch.randn(3, 16, 8, 8)
    folded, _ = fold_bn(block)
    site = FusedSite(folded.body, folded.shortcut)
    got = _run(site, x, "fused_op", runtime)
    with torch.no_grad():
        expected = block(x).numpy()
        in_torch = site(x).numpy()  # the traced stand-in is the same function too
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(in_torch, expected, rtol=1e-4, atol=1e-4)
    graph = onnx.load_from_string(rt.onnx_bytes(site, x)).graph
    # a 1x1-conv shortcut is computed inside the node, its bias folded into the node's: no node of the runtime's
    # own between fused nodes (a Conv cost ONNX Runtime a layout reorder on each side; OpenVINO's MatMul there
    # waited for its threads while the kernel's held the cores)
    fused = ["FusedStackedResidual"] if stride == 1 else ["FusedStackedProjected"]
    assert [n.op_type for n in graph.node if n.domain == "tissuenet"] == fused
    assert {n.op_type for n in graph.node} <= {"FusedStackedResidual", "FusedStackedProjected", "Transpose"}


@needs_kernel
def test_consecutive_identity_blocks_as_one_chain_node():
    """A stage's identity-shortcut blocks of 2-x-2 units (same units) become one OpenVINO node that computes them
    block after block; a block of other units, or with a 1x1-conv shortcut, starts a new run."""
    blocks = [BasicBlock(16, 32, 2, StackedLayer(["2-4-4"] * 8, stride=2))]  # projected: never chained
    blocks += [BasicBlock(32, 32, 1, StackedLayer(["2-4-2"] * 16)) for _ in range(3)]
    blocks += [BasicBlock(32, 32, 1, StackedLayer(["2-8-2"] * 16)) for _ in range(2)]
    stage = _randomize(nn.Sequential(*blocks))
    folded, _ = fold_bn(stage)
    chained = forms.with_chains(forms.with_forms(folded, {n: "fused_op" for n in forms.sites(folded)}))
    assert [len(m.sites) for m in chained.modules() if isinstance(m, forms.FusedChain)] == [3, 2]
    x = torch.randn(2, 16, 9, 10)
    graph = onnx.load_from_string(rt.onnx_bytes(chained, x)).graph
    ops = [n.op_type for n in graph.node if n.domain == "tissuenet"]
    assert ops == ["FusedStackedProjected", "FusedStackedChain", "FusedStackedChain"]
    assert [len(n.input) for n in graph.node if n.op_type == "FusedStackedChain"] == [1 + 4 * 3, 1 + 4 * 2]
    with torch.no_grad():
        expected = stage(x).numpy()
        np.testing.assert_allclose(chained(x).numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_run(chained, x, "fused_op", "openvino"), expected, rtol=1e-4, atol=1e-4)
    narrow = _randomize(nn.Sequential(*[BasicBlock(10, 10, 1, StackedLayer(["2-4-2"] * 5)) for _ in range(2)]))
    folded, _ = fold_bn(narrow)  # 10 channels: lanes past the last unit padded
    chained = forms.with_chains(forms.with_forms(folded, {n: "fused_op" for n in forms.sites(folded)}))
    x = torch.randn(3, 10, 7, 5)
    with torch.no_grad():
        expected = narrow(x).numpy()
    np.testing.assert_allclose(_run(chained, x, "fused_op", "openvino"), expected, rtol=1e-4, atol=1e-4)


@needs_kernel
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_site_between_fused_sites_reads_and_writes_nhwc(runtime):
    """How a fused site is timed: as it runs between other fused sites, its layout changes cancelled."""
    block = _randomize(BasicBlock(16, 32, 2, StackedLayer(["2-4-4"] * 8, stride=2)))
    folded, _ = fold_bn(block)
    site = forms.BetweenFusedSites(forms.FusedSite(folded.body, folded.shortcut))
    x = torch.randn(2, 16, 8, 8)
    nhwc = x.permute(0, 2, 3, 1).contiguous()
    with torch.no_grad():
        expected = block(x).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(_run(site, nhwc, "fused_op", runtime), expected, rtol=1e-4, atol=1e-4)


@needs_kernel
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_fastest_form_is_chosen_per_site_and_the_file_matches_pytorch(runtime):
    model = _randomize(create_model("tissue_resnet20", num_classes=10, in_channels=1, replace="all"))
    x = torch.randn(2, 1, 16, 16)
    module, report, fused = rt.fastest_onnx_form(model, x, threads=2, runtime=runtime)
    sites = forms.sites(fold_bn(model)[0])
    assert sum(f["sites"] for f in report.values()) == len(sites) == 9
    chains = {shape: f for shape, f in report.items() if not f["sites"]}  # the whole model timed both ways
    assert len(chains) <= (runtime in rt.CHAINS)
    for shape, f in report.items():
        assert set(f["candidates"]) == ({"a node per block", "chained"} if shape in chains else set(forms.FORMS))
        if shape not in chains:  # (the chain is chosen by the median of paired ratios, not of each one's times)
            assert f["chosen"] == min(f["candidates"], key=f["candidates"].get)
    graph = onnx.load_from_string(rt.onnx_bytes(module, x)).graph
    custom = sum(f["sites"] for f in report.values() if f["chosen"] == "fused_op")
    assert fused == (custom > 0)
    chained = [m for m in module.modules() if isinstance(m, forms.FusedChain)]
    assert bool(chained) == any(f["chosen"] == "chained" for f in chains.values())
    blocks_in_chains = sum(len(c.sites) for c in chained)
    assert sum(n.domain == "tissuenet" for n in graph.node) == custom - blocks_in_chains + len(chained)
    run = rt.SESSIONS[runtime](rt.onnx_bytes(module, x), 2, build.runtime_library(runtime) if fused else None)
    assert rt.export_check(model, run, x)["ok"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_model_without_stacked_layers_has_one_form(runtime):
    dense = create_model("resnet20", num_classes=10, in_channels=1).eval()
    module, report, fused = rt.fastest_onnx_form(dense, torch.randn(1, 1, 16, 16), threads=1, runtime=runtime)
    assert module is dense and report == {} and fused is False


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_without_a_compiler_the_operation_is_not_offered(runtime, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    build._notice.cache_clear()
    assert build.runtime_library.__wrapped__(runtime) is None
    assert f"could not build its {runtime} operation" in capsys.readouterr().err


@needs_kernel
@pytest.mark.timeout(300)
def test_latency_prints_the_form_of_each_layer(capsys):
    from tissuebench.cli import main

    args = ["latency", "tissue_resnet20", "--set", "replace=all", "--dataset", "fashion-mnist", "--batch", "1"]
    args += ["--runtime", "onnxruntime", "--runtime", "openvino", "--min-run-time", "0.5", "--threads", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for runtime in RUNTIMES:
        section = out.split(f"{runtime}, batch 1: the form of each stacked-layer shape")[1].split(", batch 1:")[0]
        lines = [line for line in section.splitlines() if "site(s):" in line]
        assert sum(int(re.search(r", (\d+) site\(s\):", line).group(1)) for line in lines) == 9, out
    assert all("grouped" in line and "fused_op" in line for line in lines), out


def test_the_report_shows_both_onnx_runtime_columns_and_the_forms():
    import pandas as pd

    from reports.data import runtime_cells
    from reports.tables import runtime_table

    def timed(speedup, ms, **extra):
        return {"64": {"speedup": speedup, "median_ms": ms, "reliable": True}} | extra

    chosen = {"64": {"block 2-4-2 x8": {"chosen": "fused_op", "candidates": {}, "sites": 7},
                     "block 2-4-4 x8": {"chosen": "grouped", "candidates": {}, "sites": 2}}}  # fmt: skip
    chain = "9 consecutive fused blocks as 3 chain node(s)"
    chained = {"64": {"block 2-4-2 x8": {"chosen": "fused_op", "candidates": {}, "sites": 9},
                      chain: {"chosen": "chained", "candidates": {}, "sites": 0}}}  # fmt: skip
    tissue = {"onnxruntime": timed(3.1, 5.0, forms=chosen), "onnxruntime_plain": timed(0.5, 30.0)}
    tissue["openvino"] = timed(2.9, 6.0, forms=chained)
    dense = {"onnxruntime": timed(1.0, 15.0), "onnxruntime_plain": timed(1.0, 15.0, same_file_as="onnxruntime")}
    agg = pd.DataFrame(
        [
            {"label": "dense", "method": "dense", "seeds": 1, "speedup_theoretical": 1.0},
            {"label": "tissuenet-all", "method": "tissuenet", "seeds": 1, "speedup_theoretical": 6.35},
        ]
    )
    agg["runtime_cells"] = [runtime_cells(pd.DataFrame([{"runtimes": r}])) for r in (dense, tissue)]
    table = runtime_table(agg)
    assert "onnxruntime<br>fastest exact form<br>batch 64" in table
    assert "onnxruntime<br>as exported plainly<br>batch 64" in table
    assert "3.10x, 5.00 ms<br><span class='note'>fused_op 7 of 9 sites, grouped 2 of 9 sites</span>" in table
    assert "0.50x, 30.00 ms</td>" in table
    # the whole-model choice of chain nodes (no sites of its own) beside the per-site forms
    assert f"2.90x, 6.00 ms<br><span class='note'>fused_op 9 of 9 sites; {chain}</span>" in table


@needs_kernel
def test_openvino_reads_the_weights_of_a_fused_node_once_and_names_one_that_is_not_an_initializer():
    """OpenVINO's extension packs a node's weights when it reads the file (its only input is then x); a weight
    that is a graph input instead of an initializer cannot be packed there: a clear error, not a wrong result."""
    import openvino as ov

    folded, _ = fold_bn(_randomize(BasicBlock(8, 8, 1, StackedLayer(["2-4-2"] * 4))))
    site = forms.BetweenFusedSites(forms.FusedSite(folded.body, folded.shortcut))
    model = onnx.load_from_string(rt.onnx_bytes(site, torch.randn(1, 4, 4, 8)))
    core = ov.Core()
    core.add_extension(str(build.runtime_library("openvino")))
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU")
    ops = compiled.get_runtime_model().get_ordered_ops()
    fused = [op for op in ops if op.get_rt_info()["layerType"].astype(str) == "Reference"]  # OpenVINO's custom path
    assert [op.get_input_size() for op in fused] == [2]  # x and the residual: the four weights live in the node
    node = next(n for n in model.graph.node if n.domain == "tissuenet")
    w1 = next(i for i in model.graph.initializer if i.name == node.input[1])
    model.graph.initializer.remove(w1)  # the same weight, now fed at run time
    model.graph.input.append(onnx.helper.make_tensor_value_info(w1.name, onnx.TensorProto.FLOAT, list(w1.dims)))
    with pytest.raises(Exception, match="input 1 of a fused node must be a float32 initializer"):
        core.read_model(model.SerializeToString(), b"")


def test_sites_of_a_traced_model_are_bare_layers_only():
    model = create_model("tissue_resnet20", num_classes=10, in_channels=1, replace="all")
    assert all(block for _, _, block in forms.sites(model).values())
    bare = forms.sites(copy.deepcopy(model), blocks=False)
    assert len(bare) == 9 and not any(block for _, _, block in bare.values())


@needs_kernel
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_deployable_file_runs_outside_the_suite_with_its_library(runtime, tmp_path):
    """What the README's "Deploying" shows: the file and the library, loaded by the runtime's own API."""
    model = _randomize(create_model("tissue_resnet20", num_classes=10, in_channels=1, replace="all"))
    x = torch.randn(4, 1, 16, 16)
    path = tmp_path / "tissue.onnx"
    library = rt.export_onnx(model, x, path, runtime, threads=2)
    if library is None:  # every site chose the plain form on this machine: a file any runtime reads
        assert not any(n.domain == "tissuenet" for n in onnx.load(str(path)).graph.node)
        return
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.register_custom_ops_library(str(library))
        got = ort.InferenceSession(str(path), options).run(None, {"x": x.numpy()})[0]
    else:
        import openvino as ov

        core = ov.Core()
        core.add_extension(str(library))
        got = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x.numpy())[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_save_onnx_never_overwrites_a_file(tmp_path, capsys):
    """Refused in one line before any timing: a file of the same name (a user's, or an earlier export) stays."""
    from tissuebench.cli import main

    mine = tmp_path / "tissue_resnet20-onnxruntime-b1.onnx"
    mine.write_text("a user's file")
    args = ["latency", "tissue_resnet20", "--dataset", "fashion-mnist", "--batch", "1", "--runtime", "onnxruntime"]
    assert main([*args, "--save-onnx", str(tmp_path)]) == 2
    assert "exists; this command never overwrites a file" in capsys.readouterr().err
    assert mine.read_text() == "a user's file"
    assert main([*args, "--save-onnx", str(mine)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main([*args[:-2], "--runtime", "deploy", "--save-onnx", str(tmp_path / "new")]) == 2
    assert "no ONNX runtime to export for" in capsys.readouterr().err
