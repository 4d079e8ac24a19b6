"""Registries and plugins: the one :class:`Registry` behind models, methods and datasets (timm's
``register_model`` / ``create_model`` / ``list_models`` pattern, written once), and the plugins that add to
them from outside this repository, found the way pytest finds them.

* **Installed** packages declare an entry point in the group ``tissuebench.plugins`` (its value is a
  module); every registry imports them before its first answer (:func:`load_installed`).
* **Not packaged**: a suite's ``plugins = ["mylab.prune"]`` or ``-p/--plugin MODULE`` on the command
  line (:func:`load`), imported from ``sys.path`` or, failing that, the working directory.

Only what a suite names or what is installed is imported. Whatever a plugin registers while it is
imported is tagged with its :class:`Origin` (module, distribution and version, or the SHA-256 of
its source file when it is not packaged): the origin enters the settings hash of every job that
uses it and the job's record, and ``tissuebench list`` shows it. A plugin that fails to import is
one :class:`PluginError` line naming it; a name registered twice is one line naming both origins.

This module sits at the bottom of the import graph (it needs only the standard library) because
every registry, ``tissuenet``'s included, loads installed plugins before answering.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generic, TypeVar

from tissuenet.names import check_name, did_you_mean

GROUP = "tissuebench.plugins"
BUILTIN = "built-in"


class PluginError(ValueError):
    """A plugin cannot be imported, or registers a name that is already taken (exit 2)."""


@dataclass(frozen=True)
class Origin:
    module: str
    distribution: str | None = None
    version: str | None = None
    sha256: str | None = None  # of the module's source file when it is not an installed distribution's
    file: str | None = None  # that file, relative to the folder it is imported from
    path: str | None = None  # the folder it was imported from (Ray workers put it on sys.path too)

    def describe(self) -> str:
        if self.distribution:
            return f"plugin {self.module} ({self.distribution} {self.version})"
        return f"plugin {self.module} (file {self.file or '?'}, sha256 {(self.sha256 or '')[:12]})"

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and k != "path"}


_current: list[Origin] = []  # the plugin being imported (registrations in the meantime are its)
_loaded: dict[str, Origin] = {}
_registered: dict[str, int] = {}  # plugin module -> what it registered while it was imported
_installed_done = False


BUILTIN_PACKAGES = ("tissuenet", "baselines", "benchmarks", "reports", "tissuebench", "results")


def current(module: str | None = None) -> Origin | None:
    """The origin of a registration made now by code in ``module``: the plugin being imported, or None for
    the project's own packages (a plugin's import may load the built-in registries on the way)."""
    if module is not None and any(module == p or module.startswith(p + ".") for p in BUILTIN_PACKAGES):
        return None
    if not _current:
        return None
    _registered[_current[-1].module] = _registered.get(_current[-1].module, 0) + 1
    return _current[-1]


def describe(origin: Origin | None) -> str:
    return origin.describe() if origin is not None else BUILTIN


def caller_module(depth: int = 2) -> str:
    """The module of the code that called the caller (a registry's register function)."""
    return sys._getframe(depth).f_globals.get("__name__", "")


def collision(kind: str, name: str, first: Origin | None, second: Origin | None) -> PluginError:
    return PluginError(f"{kind} {name!r} is registered by {describe(first)} and again by {describe(second)}")


def _distribution_of(module: str) -> tuple[str | None, str | None]:
    top = module.split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def _origin(module: str, distribution: str | None = None, version: str | None = None) -> Origin:
    spec = importlib.util.find_spec(module)
    source = Path(spec.origin) if spec is not None and spec.origin and spec.origin != "built-in" else None
    if distribution is None:
        distribution, version = _distribution_of(module)
    digest = hashlib.sha256(source.read_bytes()).hexdigest() if source and source.is_file() else None
    path = file = None
    if source is not None:  # the folder the top-level package or module is imported from
        depth = len(module.split(".")) - (0 if source.name == "__init__.py" else 1)
        path = str(source.parents[depth])
        file = str(source.relative_to(path))
    if distribution:
        return Origin(module, distribution, version, path=path)
    return Origin(module, None, None, digest, file, path)


def load(modules, *, where: str = "--plugin") -> list[Origin]:
    """Import plugin modules by name (a suite's ``plugins``, ``-p``); each once. Returns their origins."""
    load_installed()
    out = []
    for module in modules or []:
        if not isinstance(module, str) or not module or module.startswith("."):
            raise PluginError(f"{where}: a plugin is a module name such as mylab.prune, got {module!r}")
        if module not in _loaded:
            _import(module, None, None, where)
        out.append(_loaded[module])
    return out


def _import(module: str, distribution, version, where: str) -> None:
    if importlib.util.find_spec(module.split(".")[0]) is None and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # an unpackaged module beside the suite (pytest's habit)
    try:
        origin = _origin(module, distribution, version)
    except (ImportError, ValueError) as exc:
        raise PluginError(f"{where}: plugin {module!r} cannot be found ({exc})") from None
    spec = importlib.util.find_spec(module) if origin.distribution is None else None
    if origin.distribution is None and spec is None:
        raise PluginError(f"{where}: plugin {module!r} cannot be found on sys.path or in {Path.cwd()}")
    if spec is not None and spec.origin is None:  # a folder named like the module, without __init__.py
        folders = ", ".join(spec.submodule_search_locations or [])
        raise PluginError(f"{where}: plugin {module!r} is not found: {folders} is a folder, not a Python module")
    _current.append(origin)
    try:
        importlib.import_module(module)
    except PluginError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure inside a plugin: one line naming it
        raise PluginError(f"{where}: plugin {module!r} failed to import: {type(exc).__name__}: {exc}") from None
    finally:
        _current.pop()
    if distribution is None and not _registered.get(module) and not where.startswith("installed"):
        raise PluginError(
            f"{where}: plugin {module!r} ({origin.file or module}) registers no method, model or dataset: is it the "
            "module you meant?"
        )
    _loaded[module] = origin


def load_installed() -> None:
    """Import every installed plugin (entry point group ``tissuebench.plugins``), once per process."""
    global _installed_done
    if _installed_done:
        return
    _installed_done = True  # before importing: a plugin's own imports reach the registries again
    for entry in importlib.metadata.entry_points(group=GROUP):
        if entry.value not in _loaded:
            dist = entry.dist.name if entry.dist is not None else None
            version = entry.dist.version if entry.dist is not None else None
            _import(entry.value, dist, version, f"installed plugin {entry.name!r} ({dist})")


def loaded() -> dict[str, Origin]:
    """Every plugin module imported in this process (module -> origin)."""
    return dict(_loaded)


def modules_for_workers() -> list[tuple[str, str | None]]:
    """(module, folder to put on sys.path) of the plugins loaded by name, for worker processes (Ray)."""
    return [(m, o.path if o.distribution is None else None) for m, o in _loaded.items()]


def load_in_worker(modules: list[tuple[str, str | None]]) -> None:
    for _, folder in modules:
        if folder and folder not in sys.path:
            sys.path.insert(0, folder)
    load([m for m, _ in modules], where="worker")


T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (``model``, ``method``, ``dataset``), each tagged with the plugin it came from.

    ``builtins``: the module whose import registers the built-in entries, imported (with every installed
    plugin) before the first answer; ``unknown(name, registry)``: the exception a lookup of an unknown name
    raises (each kind words its own hint).
    """

    def __init__(self, kind: str, builtins: str, unknown: Callable[[str, Registry], Exception]) -> None:
        self.kind, self.builtins, self.unknown = kind, builtins, unknown
        self._entries: dict[str, T] = {}
        self._origins: dict[str, Origin | None] = {}

    def add(self, name: str, entry: T, module: str | None) -> T:
        """Register ``entry`` under ``name``; ``module``: where the registering code lives (its origin)."""
        check_name(name, f"{self.kind} name")
        origin = current(module)
        if name in self._entries:
            raise collision(self.kind, name, self._origins.get(name), origin)
        self._entries[name], self._origins[name] = entry, origin
        return entry

    def load(self) -> Registry[T]:
        importlib.import_module(self.builtins)
        load_installed()
        return self

    def get(self, name: str) -> T:
        self.load()
        if name not in self._entries:
            raise self.unknown(name, self)
        return self._entries[name]

    def origin(self, name: str) -> Origin | None:
        """The plugin ``name`` comes from (None: built-in, or not registered)."""
        self.load()
        return self._origins.get(name)

    def names(self, pattern: str = "*") -> list[str]:
        self.load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self) -> Iterator[T]:
        self.load()
        return iter(list(self._entries.values()))

    def remove(self, name: str) -> None:
        """Take ``name`` out again (a test's temporary entry)."""
        self._entries.pop(name, None)
        self._origins.pop(name, None)

    def suggest(self, name: str) -> str:
        """' Did you mean: ...?' among the registered names."""
        return did_you_mean(name, self._entries)
