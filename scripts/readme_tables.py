"""The README's tables that come from the code, generated here so that they cannot drift.

    python scripts/readme_tables.py          # rewrite the generated blocks of README.md
    python scripts/readme_tables.py --check  # exit 1 if a block is out of date (tests/test_docs.py runs it)

A block sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``; everything else in the README
is prose. Blocks: the shipped suites (jobs and training compute from each suite's own dry run), and the
paper's tables and figures (``reports/paper_figures.py``'s list) with the command and the GPU time behind each.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

README = REPO / "README.md"
# An H200 trained a CIFAR ResNet-56 at about 14,000 img/s in fp32 with resident data (field notes):
# 14,000 x 3 x 126 M MACs = 5.3 T MACs/s. Compact CNNs are launch-bound, so this is a rough rate, said so.
GPU_MACS_PER_S = 14_000 * 3 * 126e6
GPU_RATE_TEXT = "5.3 T MACs/s, an H200's measured rate on ResNet-56 (field notes)"


@functools.cache
def suite_compute(name: str) -> tuple[int, float]:
    """(jobs, total training compute in MACs) of a shipped suite, from its dry run (nominal dataset sizes)."""
    from benchmarks.data.datasets import get_dataset
    from benchmarks.suites.load import load_suite
    from benchmarks.suites.planning import plan, total_compute

    suite = load_suite(name)
    jobs = suite.jobs()
    images = {}
    for dataset in suite.datasets:
        nominal = get_dataset(dataset).train_images or 0
        limit = suite.data.train_limit
        images[dataset] = min(limit, nominal) if limit else nominal
    return len(jobs), total_compute(plan(suite, jobs), images)


def _hours(macs: float) -> str:
    hours = macs / GPU_MACS_PER_S / 3600
    if hours >= 10:
        return f"{hours:,.0f} h"
    return f"{hours:.1f} h" if hours >= 0.1 else f"{max(1, round(hours * 60))} min"


def suites_block() -> str:
    from benchmarks.suites.load import list_suites, load_suite

    lines = [
        "| suite | what | jobs | training compute | one GPU at 5.3 T MACs/s |",
        "|---|---|---:|---:|---:|",
    ]
    for name in list_suites():
        jobs, macs = suite_compute(name)
        description = load_suite(name).description
        lines.append(f"| `{name}` | {description} | {jobs} | {macs / 1e12:,.0f} T MACs | {_hours(macs)} |")
    return "\n".join(lines)


def paper_block() -> str:
    from reports.paper_figures import ITEMS, SUITE_FIGURES

    computes = {}
    lines = [
        "| item | what | transcribed here | suite(s) | command | GPU time | output |",
        "|---|---|---|---|---|---:|---|",
    ]
    for item in ITEMS:
        for suite in item.suites:
            computes.setdefault(suite, suite_compute(suite)[1])
        macs = sum(computes[s] for s in item.suites)
        runs = " && ".join(f"`tissuebench run {s} --data-root DATA`" for s in item.suites)
        results = " ".join(f"--results runs/{s}" for s in item.suites)
        figure = SUITE_FIGURES.get(item.name)
        output = "`runs/paper-figures/index.html`" + (f"; `runs/SUITE/report/` (`fig_{figure}_*`)" if figure else "")
        command = (
            (runs + f", then `tissuebench paper-figures {results}`") if item.suites else "`tissuebench paper-figures`"
        )
        time = _hours(macs) if item.suites else "seconds"
        suites = ", ".join(f"`{s}`" for s in item.suites) or "(none: counted)"
        lines.append(f"| {item.name} | {item.content} | {item.published} | {suites} | {command} | {time} | {output} |")
    return "\n".join(lines) + f"\n\nGPU time: the suites' dry-run training compute at {GPU_RATE_TEXT}; a rough rate."


BLOCKS = {"suites": suites_block, "paper": paper_block}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no generated block {name!r}")
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = ap.parse_args(argv)
    current = README.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("README.md is out of date: run python scripts/readme_tables.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
