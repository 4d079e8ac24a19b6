"""``tissuebench paper-costs``: each published TissueNet row, its preset, and the cuts measured here."""

from __future__ import annotations

import json

NAME = "paper-costs"
HELP = "the paper's 11 TissueNet rows: published FLOPs/params cuts vs this code's presets, measured"


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="a JSON list of objects")


def run(args) -> int:
    from benchmarks.paper.published import paper_costs

    rows = paper_costs()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'preset (results/paper/presets.toml)':<31} {'row':<10} {'FLOPs cut, %':>17} {'params cut, %':>17}")
    print(f"{'':<42} {'published / here':>17} {'published / here':>17}")
    for r in rows:
        f = f"{r['published_flops_cut']:.2f} / {r['flops_cut']:.2f}" if r["flops_cut"] is not None else "no preset"
        p = f"{r['published_params_cut']:.2f} / {r['params_cut']:.2f}" if r["params_cut"] is not None else ""
        preset = r["preset"] or f"{r['dataset']}-{r['model']} (none)"
        print(f"{preset:<31} {r['method']:<10} {f:>17} {p:>17}")
    print("cuts vs the same code's dense backbone at the dataset's shape (a preset names its dataset and model)")
    return 0
