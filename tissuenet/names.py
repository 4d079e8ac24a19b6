"""Names: the one alphabet for every name that travels into file names, CSV cells, legends and terminals,
and the "did you mean" of every registry's error. Standard library only (the command line checks names
before it imports anything heavy)."""

from __future__ import annotations

import difflib
import re

# The one alphabet for every name that travels into file names, CSV cells, figure legends and terminals:
# registered models, methods and datasets, and the labels of a suite. A letter or digit first (no formula
# prefix such as = + - @ in a spreadsheet), then letters, digits and _ . + - ; no $ (mathtext), no #
# (a comment in CSV), no control characters; at most NAME_MAX characters (file names stay short).
NAME_MAX = 48
NAME_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.+-]{{0,{NAME_MAX - 1}}}")
NAME_RULE = f"a letter or digit, then letters, digits, '_', '.', '+', '-'; at most {NAME_MAX} characters"


def check_name(name, what: str) -> str:
    """``name`` if it follows the name alphabet, else ValueError saying the rule."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = repr(name) if not isinstance(name, str) or len(name) <= 60 else repr(name[:60]) + "..."
        raise ValueError(f"{what} {shown}: a name is {NAME_RULE}")
    return name


def did_you_mean(name: str, choices) -> str:
    """' Did you mean: a, b?' for the closest names (shared by every registry's error)."""
    close = difflib.get_close_matches(name, list(choices), n=4, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""
