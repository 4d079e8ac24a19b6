"""The report's static index page: opened from disk, no server, no scripts, no timestamps."""

from __future__ import annotations

import html
from pathlib import Path

CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{padding:2px 6px;border-bottom:1px solid #ddd;
text-align:right}td:first-child,td:nth-child(2),th{text-align:left}img{max-width:100%;border:1px solid #eee}
.gap{color:#b00}code{background:#f4f4f4;padding:0 3px}"""


def write_index(path: Path, manifest: dict) -> None:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tissuebench report</title>",
        f"<style>{CSS}</style></head><body><h1>tissuebench report</h1>",
    ]
    prov = manifest.get("provenance") or {}
    if prov:
        parts.append("<h2>Provenance</h2><ul>")
        for key in ("suites", "git_sha", "git_dirty", "devices", "first_run_utc", "last_run_utc", "jobs", "failed"):
            value = prov.get(key)
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"<li><b>{e(key)}</b>: <code>{e(text)}</code></li>")
        for v in prov.get("versions", []):
            parts.append(f"<li><b>versions</b>: <code>{e(', '.join(f'{k} {x}' for k, x in v.items()))}</code></li>")
        parts.append("</ul>")
    gaps = manifest.get("gaps") or []
    parts.append(f"<h2>Gaps</h2><p>{len(gaps)} failed or missing jobs.</p>")
    if gaps:
        parts.append(
            "<ul>"
            + "".join(
                f"<li class='gap'><code>{e(g['job_id'])}</code>: {e(g['status'])} {e(g['error'])}</li>" for g in gaps
            )
            + "</ul>"
        )
    parts.append(
        "<h2>Tables</h2><p>Rows marked <i>published (own baseline)</i> are the paper's numbers, each "
        "against the baseline of the paper it was copied from; <i>measured here</i> rows share one "
        "dense checkpoint per model and seed. FLOPs = 2 x MACs (conv + linear, batch 1); unstructured "
        "rows count effective FLOPs and nonzero parameters.</p>"
    )
    for t in manifest["tables"]:
        links = " · ".join(f"<a href='{e(t['stem'])}.{ext}'>{ext}</a>" for ext in ("md", "csv", "tex"))
        parts.append(f"<h3>{e(t['model'])} on {e(t['dataset'])}</h3><p>{links}</p>{t['html']}")
    parts.append("<h2>Figures</h2>")
    for f in manifest["figures"]:
        png = next(x for x in f["files"] if x.endswith(".png"))
        links = " · ".join(f"<a href='{e(x)}'>{e(x.rsplit('.', 1)[1])}</a>" for x in f["files"])
        parts.append(
            f"<h3>{e(f['kind'])}: {e(f['model'])} on {e(f['dataset'])}</h3><p>{links}</p>"
            f"<a href='{e(png)}'><img src='{e(png)}' alt='{e(f['kind'])}'></a>"
        )
    parts.append("</body></html>\n")
    path.write_text("\n".join(parts))
