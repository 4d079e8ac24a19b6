"""Model registry in the style of timm: ``register_model``, ``create_model``, ``list_models``.

Every backbone registers its dense form (``resnet56``) and its TissueNet form (``tissue_resnet56``).
Names with a prefix reach other libraries lazily: ``torchvision:resnet18``, ``timm:resnet18``.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from tissuenet import plugins
from tissuenet.names import check_name, did_you_mean


class UnknownModelError(KeyError):
    """The name is not registered (the message lists close matches)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ModelOptionError(TypeError):
    """An option the model builder does not accept, or a bad option value."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: Callable[..., nn.Module]
    family: str
    tissue: bool  # TissueNet variant (stacked units) or dense backbone
    input_size: int  # the resolution the paper uses it at (and `describe` defaults to)
    tags: tuple[str, ...] = field(default=())
    in_channels: int = 3  # the input the paper uses it with (1 for the MNIST models)
    dense_name: str | None = None  # a TissueNet variant: the dense backbone it replaces

    def options(self) -> dict[str, object]:
        """Builder options beyond num_classes / in_channels, with their defaults."""
        params = inspect.signature(self.fn).parameters.items()
        return {k: p.default for k, p in params if k not in ("num_classes", "in_channels")}


_REGISTRY: dict[str, ModelEntry] = {}
_ORIGINS: dict[str, object] = {}  # name -> plugins.Origin (None: built-in)


_PREFIXES = ("torchvision:", "timm:")


def register_model(
    *,
    family: str,
    input_size: int = 32,
    in_channels: int = 3,
    name: str | None = None,
    dense_name: str | None = None,
    tags=(),
):
    """Decorator: register ``fn(num_classes=..., in_channels=..., **options) -> nn.Module``.

    ``dense_name`` marks a TissueNet variant and names the dense backbone it replaces.
    """

    def wrap(fn):
        key = check_name(name or fn.__name__, "model name")
        origin = plugins.current(fn.__module__)
        if key in _REGISTRY:
            raise plugins.collision("model", key, _ORIGINS.get(key), origin)
        _ORIGINS[key] = origin
        tissue = dense_name is not None
        _REGISTRY[key] = ModelEntry(key, fn, family, tissue, input_size, tuple(tags), in_channels, dense_name)
        return fn

    return wrap


def _ensure_loaded() -> None:
    import tissuenet.models  # noqa: F401  (registers the built-in families)

    plugins.load_installed()


def model_origin(name: str):
    """The plugin a model comes from (``plugins.Origin``), or None for a built-in or an external prefix."""
    _ensure_loaded()
    return _ORIGINS.get(name)


def list_models(pattern: str = "*", *, tissue: bool | None = None, family: str | None = None) -> list[str]:
    """Registered names matching a glob ``pattern`` (external prefixes are not enumerated)."""
    _ensure_loaded()
    return sorted(
        n
        for n, e in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern)
        and (tissue is None or e.tissue == tissue)
        and (family is None or e.family == family)
    )


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise UnknownModelError(
            f"unknown model {name!r}.{did_you_mean(name, _REGISTRY)} See `tissuebench list models`;"
            " other libraries by prefix: " + ", ".join(p + "NAME" for p in _PREFIXES)
        )
    return _REGISTRY[name]


def tissue_name(dense: str) -> str | None:
    """The registry name of a dense backbone's TissueNet variant (None: it has none)."""
    _ensure_loaded()
    return next((e.name for e in _REGISTRY.values() if e.dense_name == dense), None)


def create_model(name: str, num_classes: int = 10, in_channels: int | None = None, **options) -> nn.Module:
    """Build a model by name. Options are checked against the builder's signature.

    ``in_channels`` defaults to the input the model is registered with (3, or 1 for the MNIST models).
    """
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            from tissuenet.models.external import create_external

            return create_external(prefix[:-1], name[len(prefix) :], num_classes, in_channels or 3, **options)
    entry = get_entry(name)
    in_channels = entry.in_channels if in_channels is None else in_channels
    accepted = entry.options()
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ModelOptionError(
            f"model {name!r} does not take option(s) {', '.join(unknown)}; it takes: "
            + (", ".join(f"{k}={v!r}" for k, v in accepted.items()) or "no options")
        )
    try:
        model = entry.fn(num_classes=num_classes, in_channels=in_channels, **options)
    except (ValueError, TypeError) as exc:
        raise ModelOptionError(f"model {name!r}: {exc}") from exc
    model.model_name = name
    return model


def create_model_for_input(name: str, num_classes: int, in_channels: int, input_size: int, **options) -> nn.Module:
    """``create_model``, passing ``input_size`` to the builders that need it (MLP, LeNet)."""
    if ":" not in name and "input_size" in get_entry(name).options():
        options = {"input_size": input_size} | options
    return create_model(name, num_classes, in_channels, **options)
