"""``tissuebench describe``: cost of any registered model under the suite's counting convention."""

from __future__ import annotations

import ast
import json

from tissuenet import count_macs, count_params, get_entry
from tissuenet.registry import create_model_for_input


def parse_sets(pairs: list[str]) -> dict:
    """``["units=2-8-2", "seed=3", "replace=[2,3]"]`` -> options; values parsed as Python literals."""
    options = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        try:
            options[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            options[key] = raw  # plain strings such as 2-4-2 or ours_r
    return options


def describe(name: str, options: dict, num_classes: int, in_channels: int, input_size: int | None) -> dict:
    external = ":" in name
    size = input_size or (224 if external else get_entry(name).input_size)
    model = create_model_for_input(name, num_classes, in_channels, size, **options)
    macs = count_macs(model, in_channels, size)
    out = {
        "model": name,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "input_size": size,
        "params": count_params(model),
        "macs": macs,
        "flops": 2 * macs,
        "tissue_options": model.tissue_options,
    }
    if name.startswith("tissue_"):  # the dense backbone it replaces, same head and input
        dense_opts = {k: v for k, v in options.items() if k in get_entry(name[7:]).options()}
        dense = create_model_for_input(name[7:], num_classes, in_channels, size, **dense_opts)
        d_params, d_macs = count_params(dense), count_macs(dense, in_channels, size)
        out["dense"] = {"model": name[7:], "params": d_params, "macs": d_macs, "flops": 2 * d_macs}
        out["params_reduction_pct"] = 100 * (1 - out["params"] / d_params)
        out["flops_reduction_pct"] = 100 * (1 - macs / d_macs)
    return out


def format_description(d: dict) -> str:
    lines = [
        f"{d['model']}  ({d['num_classes']} classes, {d['in_channels']}x{d['input_size']}x{d['input_size']} input)",
        f"  params : {d['params']:>14,d}  ({d['params'] / 1e6:.3f} M)",
        f"  MACs   : {d['macs']:>14,d}  ({d['macs'] / 1e6:.3f} M)   conv+linear, batch 1",
        f"  FLOPs  : {d['flops']:>14,d}  ({d['flops'] / 1e6:.3f} M)   = 2 x MACs",
    ]
    if "dense" in d:
        dn = d["dense"]
        lines.append(
            f"  vs dense {dn['model']}: params {dn['params'] / 1e6:.3f} M ({-d['params_reduction_pct']:+.2f} %),"
            f" FLOPs {dn['flops'] / 1e6:.3f} M ({-d['flops_reduction_pct']:+.2f} %)"
        )
    if d["tissue_options"]:
        opts = d["tissue_options"]
        lines.append(
            f"  TissueNet: units {','.join(opts['units'])}, replace={opts['replace']!r} -> stages {opts['stages']}"
            f", keep_first={opts['keep_first']}, seed={opts['seed']}, {len(opts['plan'])} stacked layers"
        )
        for layer, units in opts["plan"].items():
            counts = {u: units.count(u) for u in dict.fromkeys(units)}
            lines.append(f"    {layer:<18} " + ", ".join(f"{n} x {u}" for u, n in counts.items()))
    return "\n".join(lines)


def run(args) -> int:
    d = describe(args.model, parse_sets(args.set), args.num_classes, args.in_channels, args.input_size)
    print(json.dumps(d, indent=2) if args.json else format_description(d))
    return 0
