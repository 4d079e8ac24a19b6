"""Text that came from input (a plugin's exception, a record, a file) made safe to print or store.

Standard library only: the command line imports it before anything heavy.
"""

from __future__ import annotations

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def clean_text(text) -> str:
    """Control characters shown escaped (ESC as ``\\x1b``, NUL as ``\\x00``, CR as ``\\r``): text from
    input can then neither drive a terminal (titles, clearing, overwriting a line) nor hide in a file.
    Line feeds and tabs stay."""
    text = str(text)
    if text.replace("\n", "").replace("\t", "").isprintable():  # the usual case, at C speed
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def spreadsheet_safe(frame):
    """A copy of a table for CSV: text cells that a spreadsheet would run as a formula get a leading
    apostrophe (OWASP's CSV-injection advice); control characters are escaped. Numbers are untouched."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: _cell(v) if isinstance(v, str) else v)
    return out


def _cell(value: str) -> str:
    return ("'" if value.startswith(FORMULA_PREFIXES) else "") + clean_text(value)


def markdown_table(header: list[str], rows, right_from: int | None = None) -> list[str]:
    """The lines of a Markdown table (every one the project prints or writes): ``|`` inside a cell escaped,
    the columns from ``right_from`` on right-aligned."""

    def cells(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    align = ["---:" if right_from is not None and i >= right_from else "---" for i in range(len(header))]
    return [cells(header), "|" + "|".join(align) + "|", *(cells(row) for row in rows)]
