"""Hook specifications: the whole contract between aetk and its plugins.

A plugin is a module (or object) exposed under the ``aetk`` entry-point group that implements some
of these hooks with the ``aetk.hookimpl`` marker. aetk calls every implementation of a hook, one
plugin at a time, so that a plugin that raises is reported by name and the others still load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

PROJECT = "aetk"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_featurizers(register: Callable[[type], None]) -> None:
    """Register featurizer classes (audio → feature tensor).

    :param register: call ``register(cls)`` once per class; ``cls`` subclasses
        ``aetk.Featurizer`` and sets a unique ``name`` such as ``"mel-db"``.
    :return: nothing; the return value is ignored. Every plugin's implementation is called.

    Since 0.1.
    """


@hookspec
def register_models(register: Callable[[type], None]) -> None:
    """Register model classes (PyTorch networks trained on features of normal recordings).

    :param register: call ``register(cls)`` once per class; ``cls`` subclasses ``aetk.Model``
        and sets a unique ``name`` such as ``"improved-ae"``.
    :return: nothing; the return value is ignored. Every plugin's implementation is called.

    Since 0.1.
    """


@hookspec
def register_scorers(register: Callable[[type], None]) -> None:
    """Register scorer classes (fitted model + features → anomaly score and threshold).

    :param register: call ``register(cls)`` once per class; ``cls`` subclasses ``aetk.Scorer``
        and sets a unique ``name`` such as ``"mse"``. Localization (``Scorer.localize``: when and
        in which bands a clip departs from normal) is part of the scorer contract but optional:
        a scorer that cannot localize returns ``None`` and its events are reported as unknown.
    :return: nothing; the return value is ignored. Every plugin's implementation is called.

    Since 0.1.
    """


@hookspec
def register_watch_sources(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Add a kind of live source to ``aetk watch`` (beside folders, input devices and stdin).

    :param register: ``register(scheme, open)``: ``aetk watch SCHEME:ADDRESS`` then calls
        ``open(address, rate, channels, stopping)`` (``rate`` and ``channels``: what the user
        asked for with ``--rate`` and ``--channels``, or None and 1), which returns
        ``(aetk.StreamFormat, blocks)``: the stream's sample rate and channel count,
        and an iterator of ``[channels, samples]`` float32 blocks in [-1, 1]; it should end when
        ``stopping()`` returns True or the stream ends. Raise :class:`aetk.ConfigError` for an
        address that cannot be opened.
    :return: nothing; the return value is ignored. Every plugin's implementation is called.

    Since 0.1.
    """


@hookspec
def register_commands(app: typer.Typer) -> Any:
    """Add sub-commands to the ``aetk`` command line.

    :param app: the root ``typer.Typer`` application; decorate functions with ``@app.command()``.
        Keep heavy imports (torch) inside the command functions so that ``aetk --help`` stays fast.
    :return: nothing; the return value is ignored. Every plugin's implementation is called.

    Since 0.1.
    """
