"""The ``tissuebench`` command line: sub-commands from a registry, one error discipline.

Exit codes: 0 ok; 1 a job failed, a check found a regression, or the disk refused a write;
2 bad input (one line on stderr, nothing stored is touched); 3 a bug (with its traceback);
130 interrupted by Ctrl-C, 143 terminated by SIGTERM (one line each; rerunning resumes).
A closed pipe (``show | head``) is quiet.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback

from tissuebench import __version__

# sub-command modules, in the order `--help` lists them; each has NAME, HELP, add_arguments(p), run(args)
COMMANDS = (
    "list",
    "describe",
    "run",
    "show",
    "report",
    "check",
    "paper_figures",
    "paper_costs",
    "latency",
    "perf",
    "nightly",
)

DESCRIPTION = """\
Compare TissueNet (compact networks stacked from small basic units) with pruning baselines,
like for like: the same data, the same dense checkpoints, the same budgets, one counting convention.

  tissuebench run smoke              train the small CI suite on Fashion-MNIST (minutes on a CPU)
  tissuebench show                   the results table        (runs/smoke)
  tissuebench report                 tables, figures, index.html  (runs/smoke/report)
  tissuebench list suites            what can be run
  tissuebench paper-figures          the paper's tables and figures (with --results: ours beside)
"""


# The project's own errors, reported in one line with exit code 2: (module, class). Looked up only in modules already
# imported (an exception can only be an instance of a class that was loaded): the error path imports nothing heavy.
USER_ERRORS = (
    ("tissuebench.options", "UserError"),
    ("tissuenet.plugins", "PluginError"),
    ("benchmarks.suites.suite", "SuiteError"),
    ("benchmarks.suites.settings", "SettingsError"),
    ("benchmarks.data.datasets", "DataError"),
    ("baselines.contract", "MethodError"),
    ("tissuenet.registry", "UnknownModelError"),
    ("tissuenet.registry", "ModelOptionError"),
    ("benchmarks.store.files", "DamagedFileError"),
    ("benchmarks.store.files", "PathError"),
    ("benchmarks.run.executor", "DeviceError"),
    ("benchmarks.gate.reference", "CheckError"),
)


def _is(exc: BaseException, pairs) -> bool:
    return any(isinstance(exc, getattr(sys.modules[module], name)) for module, name in pairs if module in sys.modules)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit 2), like every other input error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it tells the reader something: not None, False or [], not already in the help."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def load(name: str):
    return importlib.import_module(f"tissuebench.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tissuebench", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tissuebench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        module = load(name)
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.HELP,
            formatter_class=HelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's or `kill`'s stop): handled like Ctrl-C, with its own exit code."""


def _on_sigterm(signum, frame):
    raise Terminated


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help and --version (0): an exit code like any other
        return exc.code if isinstance(exc.code, int) else 2
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals to whoever owns them
        previous = None
    from tissuebench.terminal import safe_output

    try:
        with safe_output():
            return _handle(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _handle(args) -> int:
    # only a run keeps finished jobs and the running job's last epoch; a dry run or a reading command has none
    resumes = args.command in ("run", "nightly") and not getattr(args, "dry_run", False)
    after = "; rerunning resumes" if resumes else ""
    try:
        return args.handler(args)
    except Terminated:
        print(f"tissuebench {args.command}: terminated (SIGTERM){after}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"tissuebench {args.command}: interrupted{after}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tissuebench show | head`: the reader left; say nothing
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - sorted below: our errors are one line, anything else a bug
        if _is(exc, [("benchmarks.store.files", "StorageError")]):
            print(f"tissuebench {args.command}: error: {exc.strerror}; nothing stored was damaged", file=sys.stderr)
            return 1
        if _is(exc, USER_ERRORS):
            from benchmarks.store.text import clean_text

            print(f"tissuebench {args.command}: error: {clean_text(exc)}", file=sys.stderr)  # input may hold ESC, NUL
            return 2
        traceback.print_exc()
        print(
            f"tissuebench {args.command}: internal error (a bug; please report it with the traceback above)",
            file=sys.stderr,
        )
        return 3


INTERRUPTED = (130, 143)


def entry() -> None:
    """The ``tissuebench`` program. After Ctrl-C or SIGTERM the process ends at once, skipping the interpreter's
    teardown: every stored file is already complete (written atomically), and tearing down native thread pools
    caught mid-work is a risk worth nothing."""
    code = main()
    if code in INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
