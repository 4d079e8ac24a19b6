"""``tissuebench latency``: time a model and its dense backbone side by side (A/B, deployment form)."""

from __future__ import annotations

import json

from benchmarks.suites.settings import MIN_LATENCY_SECONDS, MeasureConfig
from tissuebench.options import (
    MAX_BATCH,
    UserError,
    add_device,
    add_model_shape,
    add_plugins,
    int_in,
    load_plugins,
    model_shape,
    parse_sets,
)

TIMING = MeasureConfig()  # the suites' timing settings: one minimum, one default
NAME = "latency"
HELP = "time a model against its dense backbone: median, IQR, samples, measured vs theoretical speed-up"
KEYS = (
    "model",
    "runtime",
    "batch",
    "median_ms",
    "iqr_ms",
    "samples",
    "dense_median_ms",
    "speedup",
    "theoretical_speedup",
    "realized",
)


def _batches(text: str) -> list[int]:
    parse = int_in(1, MAX_BATCH)
    try:
        return [parse(b) for b in text.split(",") if b.strip()]
    except Exception as exc:  # noqa: BLE001 - argparse's message says what is wrong
        raise UserError(f"--batch {text!r}: {exc}") from None


def add_arguments(p) -> None:
    add_plugins(p)
    p.add_argument("model", help="the model to time (e.g. tissue_resnet56)")
    add_model_shape(p)
    p.add_argument(
        "--against", default=None, metavar="DENSE", help="the reference (default: the model's dense backbone)"
    )
    p.add_argument("--batch", default=",".join(map(str, TIMING.latency_batches)), help="comma-separated batch sizes")
    p.add_argument("--threads", type=int_in(1, 1024), default=None, help="CPU threads (default: torch's setting)")
    add_device(p)
    p.add_argument("--deploy", action="store_true", help="time the deployment form (BN folded, fast kernels, NHWC)")
    p.add_argument(
        "--runtime",
        action="append",
        default=None,
        metavar="NAME",
        help="runtime(s) to time on, each paired with the dense model on the same one: eager, deploy, onnxruntime, "
        "openvino, compile, tensorrt, or auto (the device's); repeatable (default: deploy with --deploy, else eager)",
    )
    p.add_argument(
        "--min-run-time",
        type=float,
        default=TIMING.min_run_time,
        help=f"seconds per model and batch size (>= {MIN_LATENCY_SECONDS})",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per batch size")
    p.add_argument(
        "--save-onnx",
        default=None,
        metavar="DIR",
        help="also write each ONNX runtime's file, stacked layers in their chosen forms, to DIR "
        "(MODEL-RUNTIME-bBATCH.onnx) and say which library it needs",
    )


def run(args) -> int:
    load_plugins(args)
    from benchmarks.measure.cost import deploy_form, eager_form
    from benchmarks.measure.timing import time_paired
    from benchmarks.run.executor import resolve_device
    from tissuenet import count_macs, get_entry
    from tissuenet.registry import create_model_for_input

    if args.min_run_time < MIN_LATENCY_SECONDS:
        raise UserError(f"--min-run-time must be >= {MIN_LATENCY_SECONDS} s (a shorter timing is noise)")
    against = args.against or (None if ":" in args.model else get_entry(args.model).dense_name)
    if against is None:
        raise UserError(f"{args.model} has no dense backbone to compare with: give --against DENSE")
    batches = _batches(args.batch)
    device = resolve_device(args.device)
    classes, channels, size = model_shape(args, args.model)
    options = parse_sets(args.set)
    model = create_model_for_input(args.model, classes, channels, size, **options).to(device).eval()
    dense = create_model_for_input(against, classes, channels, size).to(device).eval()
    theory = count_macs(dense, channels, size) / count_macs(model, channels, size)
    from benchmarks.measure import runtime_table
    from benchmarks.measure import runtimes as rt

    names = runtime_table.resolve(args.runtime or (["deploy"] if args.deploy else ["eager"]), device)
    try:
        runtime_table.check_names(names)
    except ValueError as exc:
        raise UserError(f"--runtime: {exc}") from None
    threads = args.threads or torch_threads()
    targets = _onnx_targets(args, names, batches) if args.save_onnx else {}  # refused before minutes of timing
    prepared = {
        k: rt.RuntimeForms(m, threads, deploy_form(True), eager_form(True)) for k, m in (("m", model), ("d", dense))
    }
    rows = []
    for name in names:
        why = runtime_table.RUNTIMES[name].unavailable(device)
        if why:
            print(f"{name}: not measured ({why})")
            continue
        for batch in batches:
            x = torch_randn(batch, channels, size, device)
            pair = time_paired(
                prepared["m"].target(name, x),
                prepared["d"].target(name, x),
                x,
                min_run_time=args.min_run_time,
                min_samples=TIMING.min_samples,
                thread_count=args.threads,
            )
            rows.append(
                {
                    "model": args.model,
                    "runtime": name,
                    "batch": batch,
                    "median_ms": pair.model.median_ms,
                    "iqr_ms": pair.model.iqr_ms,
                    "samples": pair.model.samples,
                    "dense_median_ms": pair.dense.median_ms,
                    "speedup": pair.speedup,
                    "theoretical_speedup": theory,
                    "realized": pair.speedup / theory,
                    "forms": prepared["m"].onnx_forms.get(name, {}).get(str(batch)),
                    "_label": prepared["m"].labels.get(name, name),
                    "_distinct": pair.distinguishable,
                    "_reliable": pair.reliable,
                    "_check": prepared["m"].checks.get(name),
                }
            )
    onnx_forms = prepared["m"].onnx_forms
    saved = _save_onnx(targets, model, channels, size, device, threads)
    prepared.clear()  # the runtimes' sessions, and the signal stack OpenVINO leaves on this thread
    rt.release_alt_stack()
    if args.json:
        for r in rows:
            print(json.dumps({k: r[k] for k in KEYS}))
        return 0
    print(f"{args.model} vs {against}, {channels}x{size}x{size}, device {device}, {threads} threads")
    header = ("runtime", "batch", "median ms", "IQR ms", "n", "dense ms", "speed-up", "theory", "realized")
    wide = max([11] + [len(r["runtime"]) for r in rows])
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (wide, 5, 10, 8, 4, 9, 9, 7, 8))))
    for r in rows:
        note = "" if r["_distinct"] else "  (not distinguishable from 1)"
        note += "" if r["_reliable"] else "  (unreliable: large spread)"
        if r["_check"] and not r["_check"]["ok"]:
            note += f"  (outputs differ from PyTorch by {r['_check']['relative']:.1e})"
        print(
            f"{r['runtime']:>{wide}} {r['batch']:>5} {r['median_ms']:>10.3f} {r['iqr_ms']:>8.3f} {r['samples']:>4} "
            f"{r['dense_median_ms']:>9.3f} {r['speedup']:>8.2f}x {r['theoretical_speedup']:>6.2f}x "
            f"{r['realized']:>8.2f}{note}"
        )
    forms = sorted({r["_label"] for r in rows if r["runtime"] in ("deploy", "eager")})
    if forms:
        print("forms: " + "; ".join(forms))
    for line in saved:
        print(line)
    for runtime, batches in onnx_forms.items():
        for batch, shapes in batches.items():
            print(f"{runtime}, batch {batch}: the form of each stacked-layer shape (median ms of each candidate)")
            for shape, f in shapes.items():
                timed = ", ".join(f"{k} {v:.3f}" for k, v in f["candidates"].items())
                where = f"{f['sites']} site(s)" if f["sites"] else "the whole model"
                print(f"  {shape}, {where}: {f['chosen']}  ({timed})")
    return 0


def _onnx_targets(args, names, batches) -> dict:
    """{(runtime, batch): path} of the files ``--save-onnx`` writes; a file already there is refused, never
    overwritten (the folder may hold a user's files)."""
    from pathlib import Path

    from benchmarks.measure.runtimes import SESSIONS

    folder = Path(args.save_onnx)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--save-onnx {folder}: not a folder")
    targets = {
        (runtime, batch): folder / f"{args.model}-{runtime}-b{batch}.onnx"
        for runtime in names
        if runtime in SESSIONS
        for batch in batches
    }
    if not targets:
        raise UserError("--save-onnx: no ONNX runtime to export for; add --runtime onnxruntime or openvino")
    taken = [str(p) for p in targets.values() if p.exists()]
    if taken:
        raise UserError(f"--save-onnx: {taken[0]} exists; this command never overwrites a file: move it away")
    return targets


def _save_onnx(targets: dict, model, channels, size, device, threads) -> list[str]:
    """The deployable files of the ONNX runtimes timed: one line each, with the library a file needs."""
    from benchmarks.measure.runtimes import export_onnx

    lines = []
    for (runtime, batch), path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        library = export_onnx(model, torch_randn(batch, channels, size, device), path, runtime, threads)
        lines.append(f"wrote {path}" + (f" (load {library} first)" if library else " (plain ONNX)"))
    return lines


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def torch_randn(batch, channels, size, device):
    import torch

    return torch.randn(batch, channels, size, size, device=device)
