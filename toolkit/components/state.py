"""Learned state of components ↔ tensors and JSON, as the detector file stores them.

Every learned attribute (public, name ending in ``_``) is kept: tensors and NumPy arrays as
tensors, a model's network as its ``state_dict``, everything else as JSON. Loading builds each
component by its registered name (never an import path) and sets only such attributes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aetk.components.base import Component, Model
from aetk.components.normalizer import Standardizer
from aetk.errors import AetkError, ConfigError, DetectorFileError
from aetk.plugin.host import get_host

_STATE_KEY = re.compile(r"^[a-z][a-z0-9_]*_$")


def build_component(path: str | Path, role: str, entry: dict[str, Any]) -> Component:
    name, params = entry.get("name"), entry.get("params")
    if not isinstance(name, str) or not isinstance(params, dict):
        raise DetectorFileError(f"{path}: detector manifest entry for the {role} is malformed")
    if role == "normalizer":
        if name != Standardizer.name:
            raise DetectorFileError(f"{path}: unknown normalizer '{name}'")
        return Standardizer(**params)
    try:
        return get_host().create(role, name, params)
    except ConfigError as exc:
        if "unknown" in str(exc) and name not in get_host().registry[role]:
            distribution = entry.get("distribution") or entry.get("plugin") or "the plugin"
            raise DetectorFileError(
                f"{path}: this detector uses {role} '{name}' from plugin '{entry.get('plugin')}', "
                f"which is not installed (pip install {distribution})"
            ) from None
        raise DetectorFileError(f"{path}: {exc}") from None


def encode_state(role: str, component: Component, tensors: dict[str, torch.Tensor]) -> dict:
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
