"""``aetk plugins new``: write a working plugin package to start from."""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path
from string import Template

from aetk_core.fileio import ensure_folder

from aetk._version import __version__
from aetk.errors import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

#: template file → path inside the new package ($module is the import name).
_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "src/$module/__init__.py",
    "components.py.tmpl": "src/$module/components.py",
    "twins.py.tmpl": "src/$module/twins.py",
    "test_contract.py.tmpl": "tests/test_contract.py",
}


def new_plugin(name: str, folder: str | Path = ".") -> Path:
    """Write plugin package ``aetk-<name>`` into ``folder``; returns its path.

    :raises ConfigError: the name is not lowercase words joined by hyphens, or the package's
        folder already exists (nothing is overwritten).
    """
    name = name.removeprefix("aetk-")
    if not _NAME.match(name):
        raise ConfigError(
            f"plugin name {name!r} must be lowercase letters and digits joined by hyphens "
            "(like 'my-scorer')"
        )
    dist = f"aetk-{name}"
    major, minor = (int(part) for part in __version__.split(".")[:2])
    values = {
        "name": name,
        "dist": dist,
        "module": dist.replace("-", "_"),
        "aetk_minor": f"{major}.{minor}",
        "aetk_next": f"{major}.{minor + 1}",
    }
    root = Path(folder) / dist
    if root.exists():
        raise ConfigError(f"{root} already exists; choose another name or folder")
    ensure_folder(Path(folder), "--dir")
    templates = resources.files("aetk.plugin").joinpath("templates")
    try:
        for template, target in _FILES.items():
            path = root / Template(target).substitute(values)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Template(templates.joinpath(template).read_text()).substitute(values))
    except OSError as exc:  # a full disk: no half-made package is left behind
        shutil.rmtree(root, ignore_errors=True)
        raise ConfigError(f"{root}: cannot write the package ({exc.strerror or exc})") from None
    except BaseException:  # Ctrl-C, likewise
        shutil.rmtree(root, ignore_errors=True)
        raise
    return root
