"""``tissuebench paper-costs``: each published TissueNet row, its preset, and the cuts measured here."""

from __future__ import annotations

import json

NAME = "paper-costs"
HELP = "the paper's 11 TissueNet rows: published FLOPs/params cuts vs this code's presets, measured"


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="a JSON list of objects")


def run(args) -> int:
    from benchmarks.paper import paper_costs

    rows = paper_costs()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'dataset':<14} {'model':<12} {'row':<10} {'preset':<28} {'FLOPs cut':>18} {'params cut':>18}")
    print(f"{'':<66} {'published / here':>18} {'published / here':>18}")
    for r in rows:
        f = f"{r['published_flops_cut']:.2f} / {r['flops_cut']:.2f}" if r["flops_cut"] is not None else "no preset"
        p = f"{r['published_params_cut']:.2f} / {r['params_cut']:.2f}" if r["params_cut"] is not None else ""
        print(f"{r['dataset']:<14} {r['model']:<12} {r['method']:<10} {r['preset'] or '-':<28} {f:>18} {p:>18}")
    print("cuts in % vs the same code's dense backbone at the dataset's shape; presets: results/paper/presets.toml")
    return 0
