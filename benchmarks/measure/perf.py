"""``tissuebench perf``: training throughput of the harness against a standard input pipeline.

Trains the same model for a fixed number of steps three ways, in one process, one after another:

1. ``harness``: the device-resident dataset (uint8 on the device, normalised and augmented
   there) and the harness's training step;
2. ``dataloader``: the standard recipe: a torchvision ``DataLoader`` with CPU workers applying
   ``RandomCrop``/``RandomHorizontalFlip``/``Normalize`` and copying batches to the device;
3. ``harness+graphs``: the harness with launch overhead removed (``torch.compile`` in
   ``reduce-overhead`` mode, i.e. CUDA graphs; on CPU, where there are no graphs, the
   ``default`` compile mode, labelled as such).

Prints img/s, the ratio to the DataLoader pipeline, and the device memory the dataset takes.
``--accuracy-epochs N`` also trains eager and compiled for N epochs with the same seed and
prints both final accuracies (the compiled mode must match eager within seed noise).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from benchmarks.data.datasets import get_dataset, load_splits, make_loaders
from benchmarks.run.executor import resolve_device
from benchmarks.run.train import compiled, evaluate, make_optimizer, train
from benchmarks.suites.settings import TrainConfig
from tissuenet.registry import create_model_for_input


class _ArrayDataset(torch.utils.data.Dataset):
    """uint8 arrays in CPU memory, torchvision transforms per sample (the usual recipe)."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def standard_loader(dataset: str, batch_size: int, workers: int, data_root=None):
    import torchvision.transforms.v2 as T

    info = get_dataset(dataset)
    tx, ty, _, _ = load_splits(dataset, data_root=data_root, device="cpu")
    tfm = [T.RandomCrop(info.input_size, padding=info.crop_padding)] if info.crop_padding else []
    tfm += [T.RandomHorizontalFlip()] if info.flip else []
    tfm += [T.ToDtype(torch.float32, scale=True), T.Normalize(info.mean, info.std)]
    ds = _ArrayDataset(tx, ty, T.Compose(tfm))
    return torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )


def _timed_steps(model, batches, cfg: TrainConfig, steps: int, warmup: int, device, compile_mode="none") -> float:
    """img/s over ``steps`` optimizer steps after ``warmup`` untimed ones."""
    model.train()
    optimizer = make_optimizer(model, cfg)
    step_model = compiled(model, compile_mode)
    it = iter(batches)
    n, t0 = 0, None
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(batches)
            x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = F.cross_entropy(step_model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            n += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def run_perf(
    model_name="resnet56",
    dataset="fashion-mnist",
    batch_size=256,
    steps=50,
    warmup=10,
    workers=4,
    device="auto",
    data_root=None,
    bf16=False,
    accuracy_epochs=0,
    log=print,
) -> dict:
    dev = resolve_device(device)
    info = get_dataset(dataset)
    cfg = TrainConfig(batch_size=batch_size, lr=0.05, bf16=bf16)
    graph_mode = "reduce-overhead" if dev.type == "cuda" else "default"

    def fresh():
        torch.manual_seed(0)
        return create_model_for_input(model_name, info.num_classes, info.in_channels, info.input_size).to(dev)

    _, harness_train, harness_test = make_loaders(dataset, batch_size=batch_size, device=dev, data_root=data_root)
    data_mb = sum(t.numel() * t.element_size() for t in load_splits(dataset, data_root=data_root, device=dev)) / 2**20
    rows = {
        "harness": _timed_steps(fresh(), harness_train, cfg, steps, warmup, dev),
        "dataloader": _timed_steps(
            fresh(), standard_loader(dataset, batch_size, workers, data_root), cfg, steps, warmup, dev
        ),
        f"harness+{'graphs' if dev.type == 'cuda' else 'compile'}": _timed_steps(
            fresh(), harness_train, cfg, steps, warmup, dev, compile_mode=graph_mode
        ),
    }
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    log(
        f"perf: {model_name} on {dataset}, batch {batch_size}, {steps} timed steps after {warmup} warm-up, "
        f"{'bf16' if bf16 else 'fp32'}, device {device_name}, DataLoader workers {workers}"
    )
    log(f"dataset resident on the device: {data_mb:.1f} MB (uint8, train + test)")
    log("| pipeline | img/s | vs dataloader |\n|---|---:|---:|")
    for name, ips in rows.items():
        log(f"| {name} | {ips:,.0f} | {ips / rows['dataloader']:.2f}x |")
    out = {"img_per_s": rows, "dataset_mb": data_mb, "device": device_name}
    if accuracy_epochs:
        acc = {}
        for mode in ("none", graph_mode):
            model = fresh()
            _, tr, te = make_loaders(dataset, batch_size=batch_size, device=dev, data_root=data_root, seed=0)
            train(model, tr, te, TrainConfig(epochs=accuracy_epochs, batch_size=batch_size, lr=0.05, compile=mode))
            acc["eager" if mode == "none" else mode] = evaluate(model, harness_test)["top1"]
        log(f"accuracy after {accuracy_epochs} epochs, same seed: " + ", ".join(f"{k} {v:.2f}" for k, v in acc.items()))
        out["accuracy"] = acc
    return out
