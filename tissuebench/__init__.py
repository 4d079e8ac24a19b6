"""tissuebench, the application: the ``tissuebench`` command line and the nightly job.

The only package that knows every other one (``tissuenet`` <- ``baselines`` <- ``benchmarks`` ->
``reports``); nothing imports it back.
"""

__version__ = "0.2.0"
