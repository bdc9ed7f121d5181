"""Learned state of components ↔ tensors and JSON, as the detector file stores them.

Every learned attribute (public, name ending in ``_``) is kept: tensors and NumPy arrays as
tensors, a model's network as its ``state_dict``, everything else as JSON. Loading builds each
component by its registered name (never an import path) and sets only such attributes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aetk.components.base import Component, Model
from aetk.errors import AetkError, ConfigError, DetectorFileError, MissingPluginError
from aetk.plugin.host import get_host

_STATE_KEY = re.compile(r"^[a-z][a-z0-9_]*_$")


def build_component(path: str | Path, role: str, entry: dict[str, Any]) -> Component:
    """The ``role`` component a manifest entry names, by its registered name only."""
    name, params = entry.get("name"), entry.get("params")
    if not isinstance(name, str) or not isinstance(params, dict):
        raise DetectorFileError(f"{path}: detector manifest entry for the {role} is malformed")
    host = get_host()
    if name not in host.registry[role]:
        elsewhere = [kind for kind, names in host.registry.items() if name in names]
        if elsewhere:
            raise DetectorFileError(
                f"{path}: the manifest names {elsewhere[0]} '{name}' as its {role}"
            )
        distribution = entry.get("distribution") or entry.get("plugin") or "the plugin"
        raise MissingPluginError(
            f"{path}: this detector uses {role} '{name}' from plugin '{entry.get('plugin')}', "
            f"which is not installed (pip install {distribution})"
        )
    _warn_on_version_change(path, role, name, entry, host)
    try:
        component = host.create(role, name, params)
        component.validate()
    except (ConfigError, TypeError, ValueError) as exc:
        raise DetectorFileError(f"{path}: {str(exc)[:300]}") from None
    return component


#: What learned state a detector file keeps, as an error message says it.
STORABLE = (
    "a torch.nn.Module (the model's module_), a torch.Tensor, a NumPy array, or a JSON value "
    "(None, bool, int, float, str, and lists and dicts of them)"
)


def check_storable(role: str, component: Component) -> None:
    """Every learned attribute of ``component`` can be written to a detector file, or a
    :class:`ConfigError` names the first that cannot."""
    import json

    for key, value in component.learned_state().items():
        if isinstance(value, (torch.nn.Module, torch.Tensor, np.ndarray)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"{role} '{component.name}': learned attribute {key} is {value}, a number a "
                "detector file cannot keep (did the fit diverge?)"
            )
        try:
            json.dumps(jsonable(value), allow_nan=False)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{role} '{component.name}': learned attribute {key} holds a "
                f"{type(value).__name__}, which a detector file cannot keep; store {STORABLE}"
            ) from None


def _warn_on_version_change(
    path: str | Path, role: str, name: str, entry: dict[str, Any], host: Any
) -> None:
    """One warning when the plugin that made a component is installed at another version now."""
    import warnings

    from aetk.errors import AetkWarning

    made_with = entry.get("version")
    record = host.plugins.get(host.registry[role][name].plugin)
    installed = record.version if record else None
    if isinstance(made_with, str) and installed and made_with != installed:
        warnings.warn(
            f"{path}: {role} '{name}' was made with {record.distribution or record.name} "
            f"{made_with[:40]}, and {installed} is installed: check its verdicts",
            AetkWarning,
            stacklevel=4,
        )


def encode_state(role: str, component: Component, tensors: dict[str, torch.Tensor]) -> dict:
    check_storable(role, component)
    encoded: dict[str, Any] = {}
    for key, value in component.learned_state().items():
        name = f"{role}.{key}"
        if isinstance(value, torch.nn.Module):
            for parameter, tensor in value.state_dict().items():
                tensors[f"{name}.{parameter}"] = tensor
            encoded[key] = {"$module": name}
        elif isinstance(value, torch.Tensor):
            tensors[name] = value
            encoded[key] = {"$tensor": name}
        elif isinstance(value, np.ndarray):
            tensors[name] = torch.from_numpy(np.ascontiguousarray(value))
            encoded[key] = {"$array": name}
        else:
            encoded[key] = value
    return encoded


def decode_state(
    path: str | Path, role: str, component: Component, state: dict, tensors: dict[str, torch.Tensor]
) -> None:
    if not isinstance(state, dict):
        raise DetectorFileError(f"{path}: detector state of the {role} is malformed")
    modules = {}
    for key, value in state.items():
        if not _STATE_KEY.match(key):
            raise DetectorFileError(
                f"{path}: detector state of the {role} has an invalid key {key!r}"
            )
        if isinstance(value, dict) and "$module" in value:
            modules[key] = value["$module"]
        elif isinstance(value, dict) and ("$tensor" in value or "$array" in value):
            name = value.get("$tensor", value.get("$array"))
            if name not in tensors:
                raise DetectorFileError(f"{path}: detector lacks tensor {name!r}")
            tensor = tensors[name]
            setattr(component, key, tensor.numpy() if "$array" in value else tensor)
        else:
            setattr(component, key, value)
    for key, prefix in modules.items():
        if key != "module_" or not isinstance(component, Model):
            raise DetectorFileError(f"{path}: only a model may hold network weights ({role}.{key})")
        _load_module(path, component, prefix, tensors)


def _load_module(path: str | Path, model: Model, prefix: str, tensors: dict) -> None:
    try:
        model.initialize(model.input_shape_)
    except (AttributeError, TypeError, ValueError, AetkError) as exc:
        raise DetectorFileError(f"{path}: cannot rebuild model '{model.name}' ({exc})") from None
    weights = {
        name.removeprefix(prefix + "."): tensor
        for name, tensor in tensors.items()
        if name.startswith(prefix + ".")
    }
    try:
        model.module_.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise DetectorFileError(
            f"{path}: weights do not match model '{model.name}' as the manifest describes it "
            f"({detail})"
        ) from None
    model.module_.eval()


def jsonable(value: Any) -> Any:
    """Tuples to lists and NumPy scalars to Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
