"""Every line the command line prints goes through :class:`SafeStream`: control characters arriving in
text from input (a plugin's exception message, a record, a file name) are shown escaped, so they can
neither set the window title, clear the screen nor overwrite a line with a fake one. The progress bar
alone writes to the raw stream (it needs carriage returns) and cleans its messages itself."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.store.text import clean_text

WIDTH = 100  # columns every table the command line prints fits in


def clip(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters (an ellipsis where it was cut)."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


class SafeStream:
    def __init__(self, raw) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(clean_text(text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self.raw, name)


@contextmanager
def safe_output() -> Iterator[None]:
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(out), SafeStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
