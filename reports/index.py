"""The report's static index page: opened from disk, no server, no scripts, no timestamps.

Written for a reader who has not read the code: a table of contents, what each number means and
how it was measured, the results per (dataset, model) with the paper's rows beside them, the
paper's architectures, gaps, and where the numbers came from.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from benchmarks.store.files import write_text_atomic
from reports import stats

e = html.escape

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1320px;margin:2em auto;padding:0 1.5em;
color:#1b1b1b;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
nav ol{columns:2}code{background:#f3f3f3;padding:0 3px;border-radius:3px}
.scroll{overflow-x:auto;border:1px solid #e2e2e2;margin:.6em 0}
table{border-collapse:collapse;font-size:13px}
table.results th,table.results td,table.plain th,table.plain td{padding:3px 8px;border-bottom:1px solid #e6e6e6;
white-space:nowrap}
table.results thead th{background:#f6f6f6;position:sticky;top:0}
table.results thead tr+tr th{white-space:normal;min-width:4.2em;max-width:7em;vertical-align:bottom;text-align:right}
table.wrap td{white-space:normal}
th.group{text-align:center;border-left:2px solid #ccc;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th.sticky{position:sticky;left:0;background:#fff;text-align:left;z-index:1;border-right:1px solid #ddd}
thead th.sticky{background:#f6f6f6;z-index:2}
tr.published td,tr.published th{color:#555;background:#fafafa}
td.src{color:#666;font-size:12px}
sup.mark{color:#a33;margin-left:2px}
ul.notes{font-size:12px;color:#444}
span.note{font-size:11px;color:#666;display:inline-block;max-width:18em;white-space:normal;line-height:1.25}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:13px;color:#444}
.gap{color:#a33}.defs dt{font-weight:600;margin-top:.5em}.formula{font-family:serif;font-size:15px}
"""


def _plural(n: int, word: str, *, number: bool = False) -> str:
    """``1 job``, ``3 jobs`` (``number``), or the word alone in its number (``Suite``, ``Suites``)."""
    text = word if n == 1 else f"{word}s"
    return f"{n} {text}" if number else text


def _list(items) -> str:
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _speed_settings(latency: dict) -> str:
    """The latency settings of the runs, as sentences (each setting lists its distinct values)."""
    if not latency:
        return "Latency was not measured."

    def values(key: str, sep: str = ", ") -> str:
        return sep.join(latency.get(key, [])) or "not recorded"

    samples = sorted(int(v) for v in latency.get("latency_samples", []) if str(v).isdigit())
    spread = f"{samples[0]}–{samples[-1]}" if len(samples) > 1 else (str(samples[0]) if samples else "?")
    return (
        f"Here: device {values('latency_device')}, {values('latency_threads')} thread(s); latency at batch "
        f"{values('latency_batch')}, throughput at batch {values('throughput_batch')}; {spread} paired samples per "
        f"row. {deployment_sentence(latency.get('latency_mode', []))} CPU allocator: {values('latency_allocator')}."
    )


MODE = re.compile(r"BN folded \((\d+), (\d+) kept\), stacked-layer kernels: (.*?)(, channels_last)?$")


def deployment_sentence(modes: list[str]) -> str:
    """The deployment forms of the rows (stored as labels) in one sentence a reader can follow."""
    folded, kept, kernels, nhwc, other = [], [], set(), set(), []
    for mode in modes:
        m = MODE.match(mode)
        if not m:
            other.append(mode)
            continue
        folded.append(int(m[1]))
        kept.append(int(m[2]))
        kernels |= {k for k in m[3].split(", ") if k != "none"}
        nhwc.add(bool(m[4]))
    if not folded:
        return f"Deployment form: {', '.join(other) or 'not recorded'}."
    span = lambda xs: f"{min(xs)}" if min(xs) == max(xs) else f"{min(xs)}–{max(xs)}"  # noqa: E731
    parts = [f"batch norm folded into the preceding convolution ({span(folded)} layers per model"]
    parts[0] += f", {span(kept)} left unfolded)" if max(kept) else ", none left unfolded)"
    parts.append(
        "channels-last memory" if nhwc == {True} else "contiguous memory" if nhwc == {False} else "either memory format"
    )
    parts.append(
        f"stacked layers on the {' or '.join(sorted(kernels))} kernel" if kernels else "no stacked layers to run"
    )
    return "Deployment form: " + "; ".join(parts) + "."


def _definitions(latency: dict, seeds_max: int) -> str:
    settings = _speed_settings(latency)
    seeds = (
        (
            f"With more than one seed, cells show mean ± std; hover for the 95 % Student-t confidence interval of "
            f"the mean (mean ± t(0.975, n−1)·s/√n). Each row is compared with its equal-budget dense row and with "
            f"the TissueNet row of nearest FLOPs cut by a two-sided paired t-test over seeds; the p-values of a "
            f"table are adjusted by Holm's method; <b>n.s.</b> marks a drop not significant at α = {stats.ALPHA} "
            f"after it, <b>no test</b> a row with fewer than two common seeds or no spread in its differences."
        )
        if seeds_max > 1
        else (
            "Every row here comes from one seed: there are no error bars and no significance tests; differences "
            "smaller than the run-to-run spread (unknown from one seed) should not be read as results."
        )
    )
    return f"""
<h2 id="reading">How to read this report</h2>
<dl class="defs">
<dt>TCA and TSA (the paper's trade-off metrics)</dt>
<dd><span class="formula">TCA(w1, w2) = exp(w1 · (f<sub>b</sub> − f<sub>n</sub>) / f<sub>b</sub>) /
exp(w2 · (a<sub>b</sub> − a<sub>n</sub>) / a<sub>b</sub>)</span>, with a the top-1 accuracy and f the FLOPs of the
baseline (b) and the compressed model (n); TSA is the same with parameters in place of FLOPs. The dense model scores 1;
higher is better: a score above 1 means the resource saved outweighs the accuracy lost at that weighting.
(w1, w2) = (1, 1) weighs both equally, (1, 4) stresses accuracy, (4, 1) stresses the resource.</dd>
<dt>Accuracy</dt><dd>Final-epoch top-1 on the test set, evaluated in fp32 for every row (the paper's code reports
the best epoch; we do not). Drop = dense top-1 − top-1, against the dense model trained for the same number of
epochs.</dd>
<dt>Cost</dt><dd>MACs = multiply-accumulates of convolutions and linear layers per image, batch 1 (BN, activations,
pooling, biases excluded); FLOPs = 2 × MACs, the paper's convention. Masked (unstructured) rows count
<i>effective</i> FLOPs (each layer scaled by its weight density) and <i>nonzero</i> parameters: the cost they would
have with sparse kernels, which a dense runtime does not have (§ in the tables).</dd>
<dt>Speed</dt><dd>Latency of the deployment form (BN folded, channels-last, fast stacked-layer kernels), timed
alternately with the dense model in one process, at least <code>min_samples</code> samples and
<code>min_run_time</code> seconds each (the suite's <code>[measure]</code>); speed-up = median of the paired ratios,
left out of the latency figure when their IQR exceeds a quarter of the median. {e(settings)}</dd>
<dt>Budget</dt><dd>Epochs over all phases (dense pre-training, a method's own phase, fine-tuning) and training compute =
epochs × training images × 3 × MACs, so unequal budgets show at a glance.</dd>
<dt>Seeds and statistics</dt><dd>{seeds}</dd>
<dt>Column directions</dt><dd>↑ higher is better, ↓ lower is better; hover a header for its definition.</dd>
</dl>"""


def _paper_costs(rows: list[dict]) -> str:
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{e(r['dataset'])}</td><td>{e(r['model'])}</td><td>{e(r['method'])}</td><td><code>{e(r['preset'])}"
        f"</code></td><td class='num'>{r['published_flops_cut']:.2f}</td><td class='num'>{r['flops_cut']:.2f}</td>"
        f"<td class='num'>{r['published_params_cut']:.2f}</td><td class='num'>{r['params_cut']:.2f}</td></tr>"
        for r in rows
    )
    return f"""
<h2 id="architectures">The paper's architectures</h2>
<p>Each published TissueNet row and the preset that builds it here (<code>results/paper/presets.toml</code>,
<code>tissuebench paper-costs</code>); cuts in % against this code's dense backbone at the dataset's shape.
Where no configuration within the paper's description comes within 3 points, the preset is the closest one found.</p>
<div class="scroll"><table class="plain"><thead><tr><th>dataset</th><th>model</th><th>row</th><th>preset</th>
<th>FLOPs cut, published</th><th>FLOPs cut, here</th><th>params cut, published</th><th>params cut, here</th></tr>
</thead><tbody>{body}</tbody></table></div>"""


def _paper_vs_measured(section: dict) -> str:
    pairs = section.get("pairs") or []
    if not section.get("published_rows"):
        return (
            f"<p>The paper publishes no rows for {e(section['model'])} on {e(section['dataset'])}: there is "
            "nothing to compare with.</p>"
        )
    if not pairs:
        return (
            "<p>The paper's rows for this model are in the table above (grey, each against its own baseline); "
            "no measured row here names one of its presets, so there is no row-by-row difference.</p>"
        )
    body = "".join(
        f"<tr><td>{e(p['label'])}</td><td>{e(p['published'])}</td><td class='num'>{p['drop']:+.2f}</td>"
        f"<td class='num'>{p['flops']:+.2f}</td><td class='num'>{p['params']:+.2f}</td></tr>"
        for p in pairs
    )
    return (
        f"<p>Measured minus published, for the measured rows built from a published row's preset:</p>"
        f"<div class='scroll'><table class='plain'><thead><tr><th>measured row</th><th>published row</th>"
        f"<th>Δ drop (points)</th><th>Δ FLOPs cut (points)</th><th>Δ params cut (points)</th></tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def write_index(path: Path, manifest: dict) -> None:
    sections = manifest["sections"]
    toc = ['<li><a href="#reading">How to read this report</a></li>']
    for s in sections:
        toc.append(f'<li><a href="#{s["anchor"]}">{e(s["model"])} on {e(s["dataset"])}</a></li>')
    for anchor, title in (
        ("architectures", "The paper's architectures"),
        ("kernels", "Stacked-layer kernels"),
        ("gaps", "Gaps"),
        ("provenance", "Provenance"),
    ):
        toc.append(f'<li><a href="#{anchor}">{title}</a></li>')
    prov = manifest.get("provenance") or {}
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>tissuebench report: {e(', '.join(prov.get('suites', [])) or 'results')}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>TissueNet against pruning, like for like</h1>"
        f"<p>{_plural(len(prov.get('suites', [])), 'Suite')} {e(', '.join(prov.get('suites', [])) or '–')}: "
        f"{_plural(prov.get('jobs', 0), 'job', number=True)}, seeds "
        f"{e(', '.join(map(str, prov.get('seeds', []))) or '–')}, on {e(', '.join(prov.get('devices', [])) or '–')}."
        " Every baseline of a group starts from the same dense checkpoint; every row is measured here under one "
        "counting convention. The paper's own rows appear beside ours, each against the baseline of the paper "
        "it was copied from.</p>",
        *(
            [
                f"<p class='gap'><b>A quick pass</b>, not the suite as written: run with <code>--set "
                f"{e('; '.join(prov['overrides']))}</code>. Its numbers test the pipeline, not the methods.</p>"
            ]
            if prov.get("overrides")
            else []
        ),
        f"<nav><h2>Contents</h2><ol>{''.join(toc)}</ol></nav>",
        _definitions(manifest.get("latency", {}), manifest.get("seeds_max", 0)),
    ]
    for s in sections:
        t = s["table"]
        links = " · ".join(f"<a href='{e(t['stem'])}.{ext}'>{ext}</a>" for ext in ("md", "csv", "tex"))
        parts.append(f"<h2 id='{s['anchor']}'>{e(s['model'])} on {e(s['dataset'])}</h2>")
        parts.append(f"<h3>Results</h3><p>{e(t['caption'])} Download: {links}.</p>{t['html']}")
        parts.append("<h3>Paper vs measured</h3>" + _paper_vs_measured(s))
        if s.get("runtimes_html"):
            parts.append(
                "<h3>Speed-up by runtime</h3><p>Each row's speed-up over the dense model, timed paired on the same "
                "runtime, and its median latency (means over seeds; the dense row: its own latency, the reference); "
                "‡ an unreliable timing, by the rule of the results table; theory: dense MACs / effective MACs.</p>"
                + s["runtimes_html"]
            )
        parts.append("<h3>Figures</h3>")
        for f in s["figures"]:
            png = next(x for x in f["files"] if x.endswith(".png"))
            links = " · ".join(f"<a href='{e(x)}'>{e(x.rsplit('.', 1)[1])}</a>" for x in f["files"])
            parts.append(
                f"<figure><a href='{e(png)}'><img src='{e(png)}' alt='{e(f['title'])}'></a><figcaption>"
                f"<b>{e(f['title'])}.</b> {e(f['caption'])} ({links})</figcaption></figure>"
            )
    parts.append(_paper_costs(manifest.get("paper_costs", [])))
    parts.append(_kernels(manifest.get("kernels", [])))
    gaps = manifest.get("gaps") or []
    parts.append(
        f"<h2 id='gaps'>Gaps</h2><p>{_plural(len(gaps), 'gap', number=True)}: failed, missing or damaged jobs or "
        "files, and figures with nothing measured.</p>"
    )
    if gaps:
        parts.append(
            "<ul>"
            + "".join(
                f"<li class='gap'><code>{e(g['job_id'])}</code>: {e(g['status'])} {e(g['error'])}</li>" for g in gaps
            )
            + "</ul>"
        )
    parts.append(_provenance(prov, manifest.get("superseded", [])))
    parts.append("</body></html>\n")
    write_text_atomic(path, "\n".join(parts))


def _kernels(rows: list[dict]) -> str:
    head = "<h2 id='kernels'>Stacked-layer kernels</h2>"
    if not rows:
        return head + "<p>No stacked layer was timed in its deployment form (latency off, or no TissueNet row).</p>"
    body = "".join(
        f"<tr><td><code>{e(r['shape'])}</code></td><td>{e(r['chosen'])}</td><td>{e(r['candidates'])}</td></tr>"
        for r in rows
    )
    return (
        head + "<p>The implementation chosen for each stacked-layer shape by timing every candidate on it "
        "(median ms per call), as the deployment form uses it.</p><div class='scroll'><table class='plain'><thead>"
        f"<tr><th>layer shape</th><th>chosen</th><th>candidates (ms)</th></tr></thead><tbody>{body}</tbody>"
        "</table></div>"
    )


def _provenance(prov: dict, superseded: list[dict]) -> str:
    items = []
    for key in (
        "suites",
        "overrides",
        "git_sha",
        "git_dirty",
        "devices",
        "executors",
        "first_run_utc",
        "last_run_utc",
        "jobs",
        "failed",
    ):
        value = prov.get(key)
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        items.append(f"<b>{e(key.replace('_', ' '))}</b>: <code>{e(text)}</code>")
    for v in prov.get("versions", []):
        items.append(f"<b>versions</b>: <code>{e(', '.join(f'{k} {x}' for k, x in v.items()))}</code>")
    if superseded:
        items.append(
            "<b>superseded</b> (an older definition of the suite; left out of tables and figures, "
            "<code>--include-superseded</code> shows them): "
            + ", ".join(f"<code>{e(s['job_id'])}</code>" for s in superseded)
        )
    return "<h2 id='provenance'>Provenance</h2>" + _list(items)
