"""The phases a row's model trained through, where each one's weights came from, and what they cost.

The one place the training-compute formula lives (the metric table's ``train_compute``, the dry run and
the records all use it): the sum over phases of epochs x training images x 3 x MACs (forward and backward
cost about three forward passes), plus the forward passes outside training (PFEC's sensitivity analysis)
x MACs.

A phase is ``{"phase": name, "epochs": n, "start": where its weights come from, "at": "dense" | "model"}``,
plus ``"shared": true`` for a checkpoint several rows start from (the dense one, Network Slimming's
sparsity-trained one: its compute is counted once, in its own row) and ``"forward_images": n`` for forward
passes only. ``start`` is ``"scratch"``, the label of the shared checkpoint, or the previous phase; ``at``
says which MACs it runs at: the dense network's (a masked model still computes every channel) or the
row's own. Records add ``"macs"``, the value ``at`` stood for.
"""

from __future__ import annotations

TRAIN_PASSES_PER_IMAGE = 3


def own_phases(phase: str, epochs: int, extra_epochs_at_dense_cost: int = 0, phases=None) -> list[tuple]:
    """A method's own training phases as (name, epochs, at the dense cost?): ``phases`` when it declares
    several, else ``extra_epochs_at_dense_cost`` (a plugin's own phase, named "method") and its main phase."""
    if phases is not None:
        return [tuple(p) for p in phases]
    return ([("method", extra_epochs_at_dense_cost, True)] if extra_epochs_at_dense_cost else []) + [
        (phase, epochs, False)
    ]


def phase_list(
    kind: str, own: list[tuple], *, start_name: str, start_label: str, start_epochs: int, forward_images: int = 0
) -> list[dict]:
    """Every phase of a row. ``kind``: ``dense`` (the row is a shared checkpoint itself), ``finetune`` (it
    starts from one: ``start_name`` its phase, ``start_label`` its row), ``scratch`` (it starts from nothing)."""
    if kind == "dense":
        return [{"phase": start_name, "epochs": start_epochs, "start": "scratch", "at": "model"}]
    out, previous = [], "scratch"
    if kind == "finetune":
        out.append({"phase": start_name, "epochs": start_epochs, "start": "scratch", "at": "dense", "shared": True})
        previous = start_label
    if forward_images:
        out.append(
            {"phase": "sensitivity", "epochs": 0, "start": previous, "at": "dense", "forward_images": forward_images}
        )
    for name, epochs, dense_cost in own:
        out.append({"phase": name, "epochs": epochs, "start": previous, "at": "dense" if dense_cost else "model"})
        previous = name
    return out


def phases_of(suite, job, method, own: list[tuple], *, start_epochs: int, forward_images: int = 0) -> list[dict]:
    """Every phase of ``job`` (a suite's job, ``method`` its method): the one derivation the dry run and the
    records share."""
    if job.method == "dense":
        kind, name = "dense", (job.options or {}).get("name", "dense")
    else:
        kind = method.phase if method.phase in ("dense", "finetune") else "scratch"
        own_start = method.start(job.options, job.model)
        name = own_start["name"] if own_start else "dense"
    label = suite.checkpoints(job)[0].label
    return phase_list(
        kind, own, start_name=name, start_label=label, start_epochs=start_epochs, forward_images=forward_images
    )


def with_macs(phases: list[dict], dense_macs: float, model_macs: float) -> list[dict]:
    """The phases with the MACs each ran at (what a record stores)."""
    return [p | {"macs": dense_macs if p["at"] == "dense" else model_macs} for p in phases]


def compute(phases: list[dict], train_images: int, *, shared: bool = True) -> float:
    """MACs spent training through ``phases`` (each with its ``macs``); ``shared=False`` leaves out the shared
    checkpoint a row starts from (counted once, in that checkpoint's own row)."""
    chosen = [p for p in phases if shared or not p.get("shared")]
    training = sum(p["epochs"] * p["macs"] for p in chosen) * train_images * TRAIN_PASSES_PER_IMAGE
    return float(training + sum(p.get("forward_images", 0) * p["macs"] for p in chosen))
