"""``python -m tissuebench``: the same program as the ``tissuebench`` command."""

from tissuebench.cli import entry

entry()
