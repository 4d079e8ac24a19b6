"""Model registry in the style of timm: ``register_model``, ``create_model``, ``list_models``.

Every backbone registers its dense form (``resnet56``) and its TissueNet form (``tissue_resnet56``).
Names with a prefix reach other libraries lazily: ``torchvision:resnet18``, ``timm:resnet18``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from tissuenet.plugins import Registry


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


_PREFIXES = ("torchvision:", "timm:")


def _unknown(name: str, registry: Registry) -> UnknownModelError:
    return UnknownModelError(
        f"unknown model {name!r}.{registry.suggest(name)} See `tissuebench list models`;"
        " other libraries by prefix: " + ", ".join(p + "NAME" for p in _PREFIXES)
    )


MODELS: Registry[ModelEntry] = Registry("model", "tissuenet.models", _unknown)  # importing it registers them


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
        key = name or fn.__name__
        tissue = dense_name is not None
        MODELS.add(
            key, ModelEntry(key, fn, family, tissue, input_size, tuple(tags), in_channels, dense_name), fn.__module__
        )
        return fn

    return wrap


def model_origin(name: str):
    """The plugin a model comes from (``plugins.Origin``), or None for a built-in or an external prefix."""
    return MODELS.origin(name)


def list_models(pattern: str = "*", *, tissue: bool | None = None, family: str | None = None) -> list[str]:
    """Registered names matching a glob ``pattern`` (external prefixes are not enumerated)."""
    return [
        n
        for n in MODELS.names(pattern)
        if (tissue is None or MODELS.get(n).tissue == tissue) and (family is None or MODELS.get(n).family == family)
    ]


def get_entry(name: str) -> ModelEntry:
    return MODELS.get(name)


def tissue_name(dense: str) -> str | None:
    """The registry name of a dense backbone's TissueNet variant (None: it has none)."""
    return next((e.name for e in MODELS.entries() if e.dense_name == dense), None)


def create_model(name: str, num_classes: int = 10, in_channels: int | None = None, **options) -> nn.Module:
    """Build a model by name. Options are checked against the builder's signature.

    ``in_channels`` defaults to the input the model is registered with (3, or 1 for the MNIST models).
    """
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            from tissuenet.models.external import create_external

            try:
                return create_external(prefix[:-1], name[len(prefix) :], num_classes, in_channels or 3, **options)
            except LookupError as exc:
                raise UnknownModelError(str(exc).strip("'\"")) from None
            except TypeError as exc:
                raise ModelOptionError(f"{name}: {exc}") from None
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
