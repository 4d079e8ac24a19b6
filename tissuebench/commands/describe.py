"""``tissuebench describe``: cost of any registered model under the counting convention."""

from __future__ import annotations

import json

from tissuebench.options import add_model_shape, add_plugins, load_plugins, model_shape, parse_sets

NAME = "describe"
HELP = "params, MACs and FLOPs of a model (the counting convention); a TissueNet model's cuts vs its backbone"


def add_arguments(p) -> None:
    add_plugins(p)
    p.add_argument("model", help="a registry name (see `tissuebench list models`), torchvision:NAME or timm:NAME")
    add_model_shape(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def describe(name: str, options: dict, num_classes: int, in_channels: int, input_size: int) -> dict:
    from tissuenet import count_macs, count_params, get_entry
    from tissuenet.registry import create_model_for_input

    model = create_model_for_input(name, num_classes, in_channels, input_size, **options)
    macs = count_macs(model, in_channels, input_size)
    out = {
        "model": name,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "input_size": input_size,
        "params": count_params(model),
        "macs": macs,
        "flops": 2 * macs,
        "tissue_options": getattr(model, "tissue_options", None),
    }
    dense_name = None if ":" in name else get_entry(name).dense_name
    if dense_name:  # the dense backbone it replaces, same head and input
        dense_opts = {k: v for k, v in options.items() if k in get_entry(dense_name).options()}
        dense = create_model_for_input(dense_name, num_classes, in_channels, input_size, **dense_opts)
        d_params, d_macs = count_params(dense), count_macs(dense, in_channels, input_size)
        out["dense"] = {"model": dense_name, "params": d_params, "macs": d_macs, "flops": 2 * d_macs}
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
    opts = d["tissue_options"]
    if opts:
        extra = {k: v for k, v in opts.items() if k not in ("units", "replace", "stages", "keep_first", "seed", "plan")}
        lines.append(
            f"  TissueNet: units {','.join(opts['units'])}, replace={opts['replace']!r} -> stages {opts['stages']}"
            f", keep_first={opts['keep_first']}, seed={opts['seed']}"
            + "".join(f", {k}={v!r}" for k, v in extra.items())
            + f", {len(opts['plan'])} stacked layers"
        )
        for layer, units in opts["plan"].items():
            counts = {u: units.count(u) for u in dict.fromkeys(units)}
            lines.append(f"    {layer:<18} " + ", ".join(f"{n} x {u}" for u, n in counts.items()))
    return "\n".join(lines)


def run(args) -> int:
    load_plugins(args)
    classes, channels, size = model_shape(args, args.model)
    d = describe(args.model, parse_sets(args.set), classes, channels, size)
    print(json.dumps(d, indent=2) if args.json else format_description(d))
    return 0
