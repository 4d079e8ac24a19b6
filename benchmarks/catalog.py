"""One-line descriptions of what is registered, for ``tissuebench list``."""

from __future__ import annotations

import fnmatch


def describe_all(what: str, pattern: str = "*") -> list[str]:
    if what == "methods":
        from benchmarks.methods import get_method, list_methods

        rows = [(n, get_method(n)) for n in list_methods()]
        return [
            f"{n:<22} targets {','.join(m.targets):<34} {(m.__doc__ or '').strip().splitlines()[0]}"
            for n, m in rows
            if fnmatch.fnmatch(n, pattern)
        ]
    if what == "datasets":
        from benchmarks.data.registry import get_dataset, list_datasets

        out = []
        for n in list_datasets():
            d = get_dataset(n)
            if fnmatch.fnmatch(n, pattern):
                kind = "device-resident" if d.resident else "streamed (ImageFolder)"
                out.append(f"{n:<14} {d.num_classes:>4} classes  {d.in_channels}x{d.input_size}x{d.input_size}  {kind}")
        return out
    from benchmarks.suite import list_suites, load_suite

    out = []
    for n in list_suites():
        if fnmatch.fnmatch(n, pattern):
            s = load_suite(n)
            out.append(f"{n:<18} {len(s.jobs()):>4} jobs  {s.description}")
    return out
