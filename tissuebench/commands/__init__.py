"""One module per sub-command: ``NAME``, ``HELP``, ``add_arguments(parser)``, ``run(args) -> exit code``.

Modules import heavy packages (torch, pandas, matplotlib) inside ``run`` only, so ``--help`` and
``list`` start fast.
"""
