"""The metric table: every number a result record carries, defined once.

Each :class:`Metric` says what the number is (title, unit, which way is better), how ``check``
compares it (exactly, within a tolerance, or not at all), how it is displayed, and, for derived
numbers, the function that computes it from the job's raw measurements and its dense reference.
The store's columns, ``show``, the report's tables and figures, ``check`` and the asv benchmarks
all read this table; adding a metric is one entry here, its function, and a test.

Counting convention (docs/method.md): MACs are multiply-accumulates of conv and linear layers per
image at batch 1; FLOPs = 2 x MACs. Cost-based trade-offs use *effective* MACs (each layer scaled
by its weight density) and *nonzero* parameters, so masked (unstructured) rows show what they
would cost with sparse kernels, and say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.suites.phases import compute
from tissuenet.metrics import WEIGHTINGS, tca, tca_ratio, tsa, tsa_ratio

GROUPS = {
    "accuracy": "Accuracy",
    "cost": "Cost",
    "speed": "Speed",
    "tradeoff": "Trade-off (TCA / TSA)",
    "budget": "Training: budget and speed",
}


@dataclass(frozen=True, kw_only=True)
class Metric:
    name: str  # column in records and tables
    title: str  # header for readers (unit and basis included)
    short: str  # terminal column name
    unit: str  # "%", "points", "M", "ms", "x", "" ...
    group: str  # key of GROUPS
    better: str = "none"  # "higher" | "lower" | "none"
    check: str | None = None  # "exact" | "tolerance" | None (not compared by `check`)
    # what sets it: "architecture" (the network's shape), "weights" (which weights are zero: the architecture
    # for unmasked models, training for masked ones), "training" (seeds, thread counts); `check` derives its rule
    depends: str = "architecture"
    digits: int = 2  # decimals shown
    scale: float = 1.0  # display = value x scale
    compute: Callable[[dict], float | None] | None = None  # derived: f(values) -> value
    doc: str = ""
    show: bool = False  # in `tissuebench show` by default
    report: bool = False  # in the report's tables
    asv: bool = False  # tracked by asv (only lower-is-better numbers: asv flags every increase)
    integer: bool = False  # an exact count (kept as an integer in CSV)

    def display(self, value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if self.integer and self.scale == 1:
            return f"{int(value):,d}"
        return f"{value * self.scale:.{self.digits}f}"

    @property
    def arrow(self) -> str:
        return {"higher": "↑", "lower": "↓"}.get(self.better, "")


def _m(name: str, title: str, **fields) -> Metric:
    return Metric(name=name, title=title, **fields)


def _pct_cut(new: str, base: str):
    def f(v):
        return 100 * (1 - v[new] / v[base]) if v.get(new) is not None and v.get(base) else None

    return f


def _needs(*keys):
    """Wrap a formula so it returns None when an input is missing (a failed or partial record)."""

    def wrap(fn):
        def f(v):
            if any(v.get(k) is None for k in keys):
                return None
            return fn(v)

        return f

    return wrap


def _positive(*keys):
    """A trade-off against a reference of 0 % accuracy (or zero cost, or a zero-cost model) is undefined: None."""

    def wrap(fn):
        def f(v):
            return fn(v) if all(v[k] > 0 for k in keys) else None

        return f

    return wrap


def _tradeoff(fn, cost: str, base_cost: str, w1, w2):
    return _needs("base_top1", "top1", cost, base_cost)(
        _positive("base_top1", base_cost)(lambda v: fn(v["base_top1"], v["top1"], v[base_cost], v[cost], w1, w2))
    )


def _tradeoff_metrics() -> list[Metric]:
    """TCA and TSA at every weighting the paper reports; names derived from the weightings."""
    out = []
    for w1, w2 in WEIGHTINGS:
        for key, fn, cost, base in (
            ("tca", tca, "macs_effective", "base_macs"),
            ("tsa", tsa, "params_nonzero", "base_params"),
        ):
            out.append(
                _m(
                    f"{key}_{w1}_{w2}",
                    f"{key.upper()}({w1},{w2})",
                    short=f"{key}{w1}{w2}",
                    unit="",
                    group="tradeoff",
                    better="higher",
                    compute=_tradeoff(fn, cost, base, w1, w2),
                    report=True,
                    show=(w1, w2) == (1, 1),
                    doc=f"{key.upper()} with w1={w1} (resource), w2={w2} (accuracy); from "
                    + ("effective FLOPs" if key == "tca" else "nonzero parameters"),
                )
            )
    return out


def _train_compute(v: dict) -> float:
    """Multiply-accumulates spent training this row, all phases (``benchmarks/suites/phases.py``)."""
    return compute(v["train_phases"], v["train_images"])


def _compute_vs_dense(v: dict) -> float | None:
    """This row's training compute over its equal-budget dense reference's."""
    dense = compute([{"epochs": v["base_epochs"], "macs": v["base_macs"]}], v["train_images"])
    return _train_compute(v) / dense if dense else None


# One metric per entry with its fields side by side reads better than the formatter's one field per line:
# fmt: off
METRICS: list[Metric] = [
    # -- accuracy (measured; final epoch)
    _m("top1", "Top-1 (%)", short="top1", unit="%", group="accuracy", better="higher", check="tolerance",
       depends="training", show=True, report=True, doc="final-epoch top-1 accuracy on the test set"),
    _m("top5", "Top-5 (%)", short="top5", unit="%", group="accuracy", better="higher",
       doc="final-epoch top-5 accuracy"),
    _m("test_loss", "Test loss", short="loss", unit="", group="accuracy", better="lower", digits=4,
       doc="final-epoch cross-entropy"),
    _m("best_top1", "Best-epoch top-1 (%)", short="best", unit="%", group="accuracy", better="higher",
       doc="the best epoch's top-1 (labelled extra: the paper's code reports this; we report final)"),
    _m("base_top1", "Dense top-1 (%)", short="base", unit="%", group="accuracy", better="higher", report=True,
       doc="top-1 of the equal-budget dense reference"),
    _m("acc_drop", "Drop (points)", short="drop", unit="points", group="accuracy", better="lower", show=True,
       report=True, compute=_needs("base_top1", "top1")(lambda v: v["base_top1"] - v["top1"]),
       doc="dense top-1 minus this top-1 (negative: better than dense)"),
    _m("top1_error", "Top-1 error (%)", short="err", unit="%", group="accuracy", better="lower", asv=True,
       compute=_needs("top1")(lambda v: 100 - v["top1"]), doc="100 - top-1 (lower is better, for asv)"),
    # -- cost (measured under the counting convention)
    _m("params", "Params (M)", short="params_M", unit="M", group="cost", better="lower", check="exact",
       digits=3, scale=1e-6, integer=True, doc="all trainable parameters"),
    _m("params_nonzero", "Params, nonzero (M)", short="params_nz_M", unit="M", group="cost", better="lower",
       check="exact", depends="weights", digits=3, scale=1e-6, show=True, report=True, asv=True, integer=True,
       doc="parameters that are not exactly zero"),
    _m("macs", "MACs (M)", short="MACs_M", unit="M", group="cost", better="lower", check="exact", scale=1e-6,
       integer=True, doc="multiply-accumulates of conv and linear layers per image, batch 1"),
    _m("macs_effective", "MACs, effective (M)", short="MACs_eff_M", unit="M", group="cost", better="lower",
       check="exact", depends="weights", scale=1e-6, show=True, asv=True,
       doc="MACs with each layer scaled by its weight density"),
    _m("flops", "FLOPs (M)", short="FLOPs_M", unit="M", group="cost", better="lower", scale=1e-6, integer=True,
       compute=_needs("macs")(lambda v: 2 * v["macs"]), doc="2 x MACs (the paper's convention)"),
    _m("flops_effective", "FLOPs, effective (M)", short="FLOPs_eff_M", unit="M", group="cost", better="lower",
       scale=1e-6, report=True, compute=_needs("macs_effective")(lambda v: 2 * v["macs_effective"]),
       doc="2 x effective MACs"),
    _m("density", "Weight density", short="density", unit="", group="cost", better="lower", digits=3, asv=True,
       compute=_needs("params", "params_nonzero")(lambda v: v["params_nonzero"] / v["params"]),
       doc="nonzero / all parameters"),
    _m("params_reduction_pct", "Params cut (%)", short="params_cut%", unit="%", group="cost", better="higher",
       compute=_pct_cut("params", "base_params"), doc="parameter reduction vs the dense reference"),
    _m("params_nonzero_reduction_pct", "Params cut, nonzero (%)", short="params_nz_cut%", unit="%",
       group="cost", better="higher", show=True, report=True, compute=_pct_cut("params_nonzero", "base_params"),
       doc="nonzero-parameter reduction vs the dense reference"),
    _m("macs_reduction_pct", "MACs cut (%)", short="MACs_cut%", unit="%", group="cost", better="higher",
       compute=_pct_cut("macs", "base_macs"), doc="MACs (= FLOPs) reduction vs the dense reference"),
    _m("macs_effective_reduction_pct", "FLOPs cut, effective (%)", short="MACs_eff_cut%", unit="%",
       group="cost", better="higher", show=True, report=True, compute=_pct_cut("macs_effective", "base_macs"),
       doc="effective MACs (= FLOPs) reduction vs the dense reference"),
    # -- speed
    _m("speedup_theoretical", "Speed-up, theory (x)", short="speedup_th", unit="x", group="speed",
       better="higher", report=True, compute=_needs("base_macs", "macs_effective")(
           lambda v: v["base_macs"] / v["macs_effective"] if v["macs_effective"] else None),
       doc="dense MACs / effective MACs (masked rows: only with sparse kernels)"),
    _m("latency_ms", "Latency (ms)", short="lat_ms", unit="ms", group="speed", better="lower", digits=3,
       report=True, show=True, doc="median forward time at the first latency batch (deployment form)"),
    _m("speedup_measured", "Speed-up, measured (x)", short="speedup", unit="x", group="speed", better="higher",
       report=True, doc="median of paired dense/model latency ratios (A/B/A/B in one process)"),
    _m("realized", "Realized (measured / theory)", short="realized", unit="", group="speed", better="higher",
       compute=_needs("speedup_measured", "speedup_theoretical")(
           lambda v: v["speedup_measured"] / v["speedup_theoretical"]),
       doc="the fraction of the theoretical speed-up that the measured latency shows"),
    # -- budget
    _m("epochs_total", "Epochs (all phases)", short="epochs", unit="", group="budget", digits=0, report=True,
       show=True, integer=True, compute=_needs("train_phases")(lambda v: sum(p["epochs"] for p in v["train_phases"])),
       doc="every epoch the row's model saw: dense pre-training + method phases + this job's training"),
    _m("train_compute", "Train compute (T MACs)", short="TMACs", unit="T MACs", group="budget", scale=1e-12,
       report=True, show=True, compute=_needs("train_phases", "train_images")(_train_compute),
       doc="epochs x training images x 3 x MACs, summed over all phases"),
    _m("compute_vs_dense", "Train compute vs dense (x)", short="vs_dense", unit="x", group="budget",
       report=True, show=True,
       compute=_needs("train_phases", "train_images", "base_epochs", "base_macs")(_compute_vs_dense),
       doc="this row's training compute (all phases) over its equal-budget dense reference's: 1 = the same"),
    _m("train_speedup_theoretical", "Training speed-up, theory (x)", short="train_theory", unit="x",
       group="budget", better="higher", report=True,
       compute=_needs("train_phases", "base_macs")(
           lambda v: v["base_macs"] / v["train_phases"][-1]["macs"] if v["train_phases"][-1]["macs"] else None),
       doc="dense MACs / the MACs this row trains at (a masked model trains dense: 1)"),
    _m("train_speedup", "Training speed-up, measured (x)", short="train_x", unit="x", group="budget",
       better="higher", report=True,
       compute=_needs("img_per_s", "base_img_per_s")(lambda v: v["img_per_s"] / v["base_img_per_s"]),
       doc="training images per second over the dense job's (same batch size, same machine): realized speed"),
    # -- trade-offs (the paper's metrics)
    *_tradeoff_metrics(),
    _m("tca_ratio", "TCA, ratio form", short="tca_ratio", unit="", group="tradeoff", better="higher",
       compute=_needs("base_top1", "top1", "base_macs", "macs_effective")(_positive("base_top1", "macs_effective")(
           lambda v: tca_ratio(v["base_top1"], v["top1"], v["base_macs"], v["macs_effective"]))),
       doc="(f_b / f_n) x (a_n / a_b): the MNIST table's form"),
    _m("tsa_ratio", "TSA, ratio form", short="tsa_ratio", unit="", group="tradeoff", better="higher",
       compute=_needs("base_top1", "top1", "base_params", "params_nonzero")(_positive("base_top1", "params_nonzero")(
           lambda v: tsa_ratio(v["base_top1"], v["top1"], v["base_params"], v["params_nonzero"]))),
       doc="(p_b / p_n) x (a_n / a_b)"),
]
# fmt: on
BY_NAME = {m.name: m for m in METRICS}
if len(BY_NAME) != len(METRICS):
    raise RuntimeError("duplicate metric names in the metric table")


def metric(name: str) -> Metric:
    return BY_NAME[name]


def derive(values: dict) -> dict:
    """Every derived metric, in table order, from a record's raw values (and earlier derived ones)."""
    out = dict(values)
    for m in METRICS:
        if m.compute is not None:
            out[m.name] = m.compute(out)
    return {m.name: out[m.name] for m in METRICS if m.compute is not None}


def names(*, where: str | None = None, group: str | None = None, check: str | None = None) -> list[str]:
    """Metric names with a flag set (``where="show"``, ``"report"``, ``"asv"``), a group or a check kind."""
    return [
        m.name
        for m in METRICS
        if (where is None or getattr(m, where))
        and (group is None or m.group == group)
        and (check is None or m.check == check)
    ]


def higher_is_better(name: str) -> bool:
    return BY_NAME[name].better == "higher"
