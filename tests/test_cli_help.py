"""Every sub-command's help: each option explained, defaults shown only where they say something."""

import argparse

import pytest

from tissuebench.cli import COMMANDS, build_parser, load


def _subparsers():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


@pytest.mark.parametrize("name", [load(c).NAME for c in COMMANDS])
def test_every_option_has_help_and_no_empty_default(name):
    p = _subparsers()[name]
    for action in p._actions:
        assert action.help, f"{name}: {action.option_strings or action.dest} has no help text"
    text = p.format_help().replace("\n", " ")
    text = " ".join(text.split())  # argparse wraps lines; compare on one line
    for empty in ("(default: None)", "(default: [])", "(default: False)"):
        assert empty not in text, f"`tissuebench {name} --help` shows {empty}"
    if "--results DIR" in text and name != "paper-figures":  # paper-figures takes results folders to add, no default
        assert "(default: runs/SUITE)" in text, f"`tissuebench {name} --help`: --results without its one default"
