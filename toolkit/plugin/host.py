"""Plugin loading: ``aetk`` entry points → pluggy → components by kind and name.

Plugins load lazily, once per process, built-ins (the ``aetk`` distribution) first and then the
others sorted by name. A plugin that fails to import, raises inside a hook or registers something
invalid is reported by name in a one-line :class:`aetk.AetkWarning` and the rest keep working;
``AETK_STRICT_PLUGINS=1`` turns each of those warnings into a :class:`aetk.PluginError`.
A hook implementation whose name matches no hook (a misspelling) is always an error.

Environment variables:

- ``AETK_STRICT_PLUGINS=1``: plugin problems are errors, not warnings.
- ``AETK_LOAD_PLUGINS=a,b``: load only these third-party plugins (empty: built-ins only).
- ``AETK_TRACE_PLUGINS=1``: log every hook call, with its plugin and what it did, to stderr.
"""

from __future__ import annotations

import difflib
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from aetk.components.base import COMPONENT_KINDS, Component
from aetk.errors import AetkWarning, ConfigError, PluginError
from aetk.plugin import hookspecs

ENTRY_POINT_GROUP = "aetk"
BUILTIN_DISTRIBUTION = "aetk"
#: Components the core itself provides, registered before any plugin.
CORE_PLUGIN = "aetk-core"
REGISTRATION_HOOKS = {
    "featurizer": "register_featurizers",
    "model": "register_models",
    "scorer": "register_scorers",
}


@dataclass
class PluginRecord:
    """What ``aetk plugins`` shows about one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    components: dict[str, list[str]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "hooks": self.hooks,
            "components": self.components,
            "commands": self.commands,
            "error": self.error,
        }


@dataclass(frozen=True)
class Registration:
    """A component class and the plugin that registered it."""

    cls: type[Component]
    plugin: str


class PluginHost:
    """One plugin manager and the registry of the components its plugins registered."""

    def __init__(
        self,
        entry_points: Iterable[metadata.EntryPoint] | None = None,
        *,
        strict: bool | None = None,
        only: Iterable[str] | None = None,
        trace: bool | None = None,
    ):
        env = os.environ
        self._entry_points = entry_points
        self.strict = env.get("AETK_STRICT_PLUGINS") == "1" if strict is None else strict
        self.trace = env.get("AETK_TRACE_PLUGINS") == "1" if trace is None else trace
        if only is None and "AETK_LOAD_PLUGINS" in env:
            only = [name.strip() for name in env["AETK_LOAD_PLUGINS"].split(",") if name.strip()]
        self.only = None if only is None else set(only)
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginRecord] = {}
        self.registry: dict[str, dict[str, Registration]] = {kind: {} for kind in COMPONENT_KINDS}
        #: ``aetk watch`` sources by scheme: the opener and the plugin that registered it.
        self.watch_sources: dict[str, tuple[Callable[..., Any], str]] = {}
        self._loaded = False

    # -- loading --------------------------------------------------------------------------------

    def load(self) -> PluginHost:
        """Import every plugin and collect its components; later calls do nothing."""
        if self._loaded:
            return self
        self._loaded = True
        self._register_core_components()
        for entry_point in self._selected_entry_points():
            self._load_entry_point(entry_point)
        for kind, hook_name in REGISTRATION_HOOKS.items():
            self._collect_components(kind, hook_name)
        self._collect_watch_sources()
        return self

    def register_plugin(
        self,
        plugin: object,
        name: str,
        *,
        distribution: str | None = None,
        version: str | None = None,
        builtin: bool = False,
    ) -> None:
        """Register a plugin object directly (tests and embedding applications use this)."""
        record = PluginRecord(name, distribution, version, builtin)
        self.plugins[name] = record
        try:
            self.manager.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self._problem(record, f"is invalid: {exc}")
            return
        self._check_hook_names(plugin, record)
        record.hooks = sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or [])

    def _register_core_components(self) -> None:
        from aetk._version import __version__
        from aetk.components.normalizer import Standardizer

        record = PluginRecord(CORE_PLUGIN, BUILTIN_DISTRIBUTION, __version__, builtin=True)
        record.components["normalizer"] = [Standardizer.name]
        self.plugins[CORE_PLUGIN] = record
        self.registry["normalizer"][Standardizer.name] = Registration(Standardizer, CORE_PLUGIN)

    def _selected_entry_points(self) -> list[metadata.EntryPoint]:
        found = self._entry_points
        if found is None:
            found = metadata.entry_points(group=ENTRY_POINT_GROUP)
        unique: dict[str, metadata.EntryPoint] = {}
        for entry_point in found:
            unique.setdefault(entry_point.name, entry_point)
        builtin = sorted(
            (ep for ep in unique.values() if _distribution(ep)[0] == BUILTIN_DISTRIBUTION),
            key=lambda ep: ep.name,
        )
        others = sorted(
            (ep for ep in unique.values() if _distribution(ep)[0] != BUILTIN_DISTRIBUTION),
            key=lambda ep: ep.name,
        )
        if self.only is not None:
            others = [ep for ep in others if ep.name in self.only]
        return builtin + others

    def _load_entry_point(self, entry_point: metadata.EntryPoint) -> None:
        distribution, version = _distribution(entry_point)
        builtin = distribution == BUILTIN_DISTRIBUTION
        try:
            plugin = entry_point.load()
        except Exception as exc:
            record = PluginRecord(entry_point.name, distribution, version, builtin)
            self.plugins[entry_point.name] = record
            self._problem(record, f"failed to import: {type(exc).__name__}: {exc}")
            return
        self.register_plugin(
            plugin, entry_point.name, distribution=distribution, version=version, builtin=builtin
        )

    def _check_hook_names(self, plugin: object, record: PluginRecord) -> None:
        known = [name for name in dir(hookspecs) if name.startswith("register_")]
        for caller in self.manager.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            close = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.manager.unregister(plugin)
            message = f"plugin '{record.name}' implements unknown hook '{caller.name}'{hint}"
            record.error = message
            raise PluginError(message)

    def _problem(self, record: PluginRecord, message: str) -> None:
        text = f"plugin '{record.name}' {message}"
        record.error = record.error or text
        if self.strict:
            raise PluginError(text)
        warnings.warn(text, AetkWarning, stacklevel=3)

    # -- calling hooks --------------------------------------------------------------------------

    def call_hook(self, hook_name: str, make_kwargs: Callable[[PluginRecord], dict]) -> None:
        """Call each plugin's implementation of ``hook_name`` on its own, isolating failures.

        ``make_kwargs(record)`` builds the arguments for one plugin (its ``register`` callback).
        """
        caller = getattr(self.manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            record = self.plugins[impl.plugin_name]
            kwargs = make_kwargs(record)
            if self.trace:
                args = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
                print(f"aetk: trace: {record.name}.{hook_name}({args})", file=sys.stderr)
            try:
                impl.function(**kwargs)
            except PluginError:
                raise
            except Exception as exc:
                self._problem(record, f"raised in {hook_name}: {type(exc).__name__}: {exc}")
                if self.trace:
                    print(f"aetk: trace: {record.name}.{hook_name} raised", file=sys.stderr)

    def _collect_components(self, kind: str, hook_name: str) -> None:
        base = COMPONENT_KINDS[kind]

        def make_register(record: PluginRecord) -> dict:
            def register(cls: Any) -> None:
                problem = _invalid_component(cls, base)
                if problem:
                    self._problem(record, f"registered an invalid {kind}: {problem}")
                    return
                taken = self.registry[kind].get(cls.name)
                if taken is not None:
                    self._problem(
                        record,
                        f"registered {kind} '{cls.name}', a name plugin '{taken.plugin}' "
                        "already registered; the second one is ignored",
                    )
                    return
                self.registry[kind][cls.name] = Registration(cls, record.name)
                record.components.setdefault(kind, []).append(cls.name)
                if self.trace:
                    print(
                        f"aetk: trace: {record.name} registered {kind} '{cls.name}'",
                        file=sys.stderr,
                    )

            return {"register": register}

        self.call_hook(hook_name, make_register)

    def _collect_watch_sources(self) -> None:
        def make_register(record: PluginRecord) -> dict:
            def register(scheme: Any, opener: Any) -> None:
                if not isinstance(scheme, str) or not scheme.isidentifier() or not callable(opener):
                    self._problem(record, f"registered an invalid watch source {scheme!r}")
                    return
                if scheme in self.watch_sources:
                    self._problem(
                        record,
                        f"registered watch source '{scheme}', a scheme already taken; the second "
                        "one is ignored",
                    )
                    return
                self.watch_sources[scheme] = (opener, record.name)
                record.components.setdefault("watch_source", []).append(scheme)

            return {"register": register}

        self.call_hook("register_watch_sources", make_register)

    def watch_source(self, source: str) -> tuple[Callable[..., Any], str] | None:
        """The opener a plugin registered for ``source``'s scheme (``SCHEME:ADDRESS``, or
        ``SCHEME`` alone for an empty address) and the address, or None when no plugin handles
        it (a folder, or ``-``)."""
        self.load()
        scheme, _, address = source.partition(":")
        if scheme not in self.watch_sources:
            return None
        return self.watch_sources[scheme][0], address

    def add_commands(self, app: Any) -> None:
        """Let every plugin add sub-commands to the typer ``app``, recording which it added."""
        self.load()
        seen = set(_command_names(app))
        called: list[PluginRecord] = []

        def credit() -> None:
            new = [name for name in _command_names(app) if name not in seen]
            if called:  # each app is built afresh; a plugin's list names each command once
                record = called[-1]
                record.commands.extend(name for name in new if name not in record.commands)
            seen.update(new)

        def arguments(record: PluginRecord) -> dict:
            credit()  # what the previous plugin added
            called.append(record)
            return {"app": app}

        self.call_hook("register_commands", arguments)
        credit()

    # -- lookups --------------------------------------------------------------------------------

    def registration(self, kind: str, name: str) -> Registration:
        self.load()
        try:
            return self.registry[kind][name]
        except KeyError:
            available = ", ".join(sorted(self.registry[kind])) or "none"
            raise ConfigError(f"unknown {kind} '{name}' (available: {available})") from None

    def component_class(self, kind: str, name: str) -> type[Component]:
        return self.registration(kind, name).cls

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None) -> Any:
        """A new component of ``kind`` named ``name`` built from ``params``."""
        return self.component_class(kind, name).from_params(dict(params or {}))

    def records(self) -> list[PluginRecord]:
        self.load()
        return list(self.plugins.values())

    def blame(self, error: BaseException) -> str | None:
        """One line naming the third-party plugin in whose code ``error`` was raised (its
        innermost frame there), or None when no such plugin's code raised it (aetk's own)."""
        modules = [
            (getattr(plugin, "__name__", ""), self.plugins.get(name))
            for name, plugin in self.manager.list_name_plugin()
        ]
        modules += [
            (registration.cls.__module__, self.plugins.get(registration.plugin))
            for registrations in self.registry.values()
            for registration in registrations.values()
        ]
        homes = {
            home: record
            for module, record in modules
            if record is not None
            and not record.builtin
            and (home := _package_home(module)) is not None
        }
        frames = traceback.extract_tb(error.__traceback__)
        for frame in reversed(frames):
            for home, record in homes.items():
                if frame.filename.startswith(home):
                    source = f"{os.path.basename(frame.filename)}, line {frame.lineno}"
                    release = " ".join(filter(None, (record.distribution, record.version)))
                    return (
                        f"plugin '{record.name}'{f' ({release})' if release else ''} raised "
                        f"{type(error).__name__} in {frame.name} ({source}): {error}"
                    )
        return None


def _command_names(app: Any) -> list[str]:
    names = []
    for command in [*app.registered_commands, *app.registered_groups]:
        callback = getattr(command, "callback", None)
        name = command.name or getattr(callback, "__name__", "").replace("_", "-")
        if name:
            names.append(name)
    return names


def _package_home(module_name: str) -> str | None:
    """The folder of a module's top-level package (or its file, for a single module)."""
    top = sys.modules.get(module_name.partition(".")[0])
    path = getattr(top, "__file__", None)
    if not path:
        return None
    if os.path.basename(path) == "__init__.py":
        return os.path.dirname(path) + os.sep
    return path


def _distribution(entry_point: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _invalid_component(cls: Any, base: type[Component]) -> str | None:
    if not isinstance(cls, type) or not issubclass(cls, base):
        return f"{cls!r} is not a subclass of aetk.{base.__name__}"
    component: type[Component] = cls
    if not isinstance(component.name, str) or not component.name.strip():
        return f"{component.__name__} has no name"
    try:
        component.param_names()
    except TypeError as exc:
        return str(exc)
    return None


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host.load()


def blame(error: BaseException) -> str | None:
    """:meth:`PluginHost.blame` of the process-wide host; None before plugins have loaded."""
    if _host is None or not _host._loaded:
        return None
    return _host.blame(error)


def set_host(host: PluginHost | None) -> PluginHost | None:
    """Replace the process-wide host (``None``: a fresh one on next use); returns the old one."""
    global _host
    previous, _host = _host, host
    return previous
