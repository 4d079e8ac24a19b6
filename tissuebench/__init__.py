"""tissuebench, the application: the ``tissuebench`` command line, the nightly job, and the public API
for plugins (``docs/plugins.md``)::

    from tissuebench import register_method, BaseMethod, Prepared, Target, register_model, register_dataset

Everything named in ``__all__`` is the supported surface; the packages behind it (``tissuenet``,
``baselines``, ``benchmarks``, ``reports``) are internal. Names load on first use, so importing
``tissuebench`` (and ``tissuebench --help``) stays fast. The only package that knows every other one;
nothing in the project imports it back.
"""

from __future__ import annotations

import importlib

__version__ = "0.3.0"

# public name -> (internal module, attribute)
_API = {
    # methods: the contract, targets, what a method gets and returns, the registry
    "register_method": ("baselines.contract", "register_method"),
    "BaseMethod": ("baselines.contract", "BaseMethod"),
    "JobContext": ("baselines.contract", "JobContext"),
    "PlanContext": ("baselines.contract", "PlanContext"),
    "Prepared": ("baselines.contract", "Prepared"),
    "TrainPhase": ("baselines.contract", "TrainPhase"),
    "TrainingHook": ("baselines.contract", "TrainingHook"),
    "Estimate": ("baselines.contract", "Estimate"),
    "Target": ("baselines.contract", "Target"),
    "MethodError": ("baselines.contract", "MethodError"),
    "get_method": ("baselines.contract", "get_method"),
    "list_methods": ("baselines.contract", "list_methods"),
    # helpers a structured method usually wants
    "check_options": ("baselines.structured", "check_options"),
    "prune_to_target": ("baselines.structured", "prune_to_target"),
    "Criterion": ("baselines.criteria", "Criterion"),
    # models
    "register_model": ("tissuenet.registry", "register_model"),
    "create_model": ("tissuenet.registry", "create_model"),
    "list_models": ("tissuenet.registry", "list_models"),
    # datasets
    "register_dataset": ("benchmarks.data.datasets", "register_dataset"),
    "DatasetInfo": ("benchmarks.data.datasets", "DatasetInfo"),
    "DataError": ("benchmarks.data.datasets", "DataError"),
    # counting (the one convention)
    "count_macs": ("tissuenet.counting", "count_macs"),
    "count_params": ("tissuenet.counting", "count_params"),
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'tissuebench' has no attribute {name!r} (public API: {', '.join(_API)})")
    module, attribute = _API[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
