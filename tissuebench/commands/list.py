"""``tissuebench list``: what is registered (models, methods, datasets, suites)."""

from __future__ import annotations

import fnmatch

from tissuebench.options import add_plugins, load_plugins
from tissuebench.terminal import WIDTH, clip

NAME = "list"
HELP = "list what can be used: models, methods, datasets, suites"
CATEGORIES = {
    "models": "dense backbones and their TissueNet forms (also torchvision:NAME, timm:NAME)",
    "methods": "dense, tissuenet, structured and unstructured pruning, from-scratch baselines",
    "datasets": "where each dataset is found, its shape, how it is loaded",
    "suites": "the shipped suites (benchmarks/suites/*.toml) with their job counts",
}


def add_arguments(p) -> None:
    add_plugins(p)
    p.add_argument("what", nargs="?", choices=list(CATEGORIES), help="a category (none: list the categories)")
    p.add_argument("pattern", nargs="?", default="*", help="glob over names, e.g. 'tissue_*'")
    p.add_argument("--data-root", default=None, help="datasets: also look here (as `run` does)")


def _origin(origin) -> str:
    from tissuenet.plugins import describe

    return "" if origin is None else f"  [{describe(origin)}]"


def _models(pattern: str, args) -> list[str]:
    from tissuenet import get_entry, list_models
    from tissuenet.registry import model_origin

    rows = []
    for name in list_models(pattern):
        e = get_entry(name)
        kind = f"TissueNet of {e.dense_name}" if e.tissue else "dense"
        shape = f"input {e.in_channels}x{e.input_size}x{e.input_size}"
        rows.append(f"{name:<24} {e.family:<16} {kind:<28} {shape}{_origin(model_origin(name))}")
    return rows


def _methods(pattern: str, args) -> list[str]:
    from baselines.contract import get_method, list_methods, method_origin

    out = []
    short = {"macs_reduction": "macs", "params_reduction": "params"}
    for n in list_methods():
        if fnmatch.fnmatch(n, pattern):
            m = get_method(n)
            doc = (type(m).__doc__ or "").strip().splitlines()[0]
            targets = ",".join(short.get(t, t) for t in m.targets)
            start, origin = f"{n:<18} {m.phase:<9} {targets:<17} ", _origin(method_origin(n))
            out.append(start + clip(doc, max(20, WIDTH - len(start) - len(origin))) + origin)  # the origin whole
    if out:
        out.insert(0, f"{'method':<18} {'phase':<9} {'targets':<17} what it does (tissuebench list methods NAME)")
    return out


def _datasets(pattern: str, args) -> list[str]:
    """Each dataset, its shape, and whether it is on this machine: where it was found, or where we looked."""
    from benchmarks.data.datasets import dataset_origin, get_dataset, list_datasets, locate

    out = []
    for n in list_datasets():
        if fnmatch.fnmatch(n, pattern):
            d = get_dataset(n)
            kind = "device-resident" if d.resident else "streamed"
            folder, looked = locate(n, args.data_root)
            if folder is not None:
                where = f"found: {folder}"
            else:
                where = "not found" + (" (--download fetches it)" if d.downloadable else "")
                where += f"; looked in {', '.join(looked)}" if looked else "; give --data-root DIR"
            shape = f"{d.in_channels}x{d.input_size}x{d.input_size}"
            origin = _origin(dataset_origin(n))
            line = f"{n:<14} {d.num_classes:>5} classes  {shape:<9}  {kind:<15} "
            if len(line + where + origin) <= WIDTH:
                out.append(line + where + origin)
            else:  # a long path or a long list of places: on lines of its own
                out += [line.rstrip(), *(f"    {part}" for part in (where + origin).split("; "))]
    return out


def _suites(pattern: str, args) -> list[str]:
    from benchmarks.suites.load import list_suites, load_suite

    out = []
    for n in list_suites():
        if fnmatch.fnmatch(n, pattern):
            s = load_suite(n)
            out.append(clip(f"{n:<20} {len(s.jobs()):>4} jobs  {s.description}", WIDTH))
    return out


LISTERS = {"models": _models, "methods": _methods, "datasets": _datasets, "suites": _suites}


def run(args) -> int:
    load_plugins(args)
    if args.what is None:
        for name, text in CATEGORIES.items():
            print(f"{name:<9} {text}")
        print("usage: tissuebench list CATEGORY [PATTERN]")
        return 0
    rows = LISTERS[args.what](args.pattern, args)
    for row in rows:
        print(row)
    if not rows:
        print(f"no {args.what} match {args.pattern!r} (try: tissuebench list {args.what})")
        return 2 if args.pattern != "*" else 0
    if args.what == "models":
        print("(also: torchvision:NAME, timm:NAME)")
    return 0
