"""The core compiled with mypyc, built outside the source tree, used only while it matches.

    python -m pipeline.core.mypycbuild build [--or-pure]   compile pipeline/core (about a minute)
    python -m pipeline.core.mypycbuild status              which core this interpreter runs

``build`` (:mod:`pipeline.core.mypycbuild`) copies ``pipeline/`` to a
temporary directory, compiles the modules of ``pipeline/core`` there with mypyc
(a C compiler and Python's headers are needed) and installs the extension
modules in a directory of their own under :func:`native_dir` (inside the
virtualenv by default), with a manifest of the SHA-256 of each compiled
module's source; the file ``current`` there names the build in use. Nothing
is written next to the sources: an editable install would otherwise import a
stale ``.so`` in place of the ``.py`` being edited. A rebuild never touches the
files of an earlier build, which a running process may still import from (the
three most recent builds are kept).

At import, ``pipeline/core/__init__.py`` calls :func:`activate`: the compiled
modules are put ahead of the sources only if the build is for this Python
and every compiled module's source still has the hash in the manifest; one
edited file and the whole core runs as pure Python until the next build. The
outputs are the same either way (``python -m bench.core_mypyc --outputs``).

``PULSE_CORE`` chooses: ``auto`` (the default, as above), ``pure`` (never the
compiled modules) or ``native`` (the compiled modules or an ``ImportError``
saying why not: CI runs the suite this way). ``PULSE_CORE_DIR`` overrides
where the build lives.

Not compiled: this module, ``mypycbuild`` and ``__init__`` (they decide what is loaded).
``store`` and ``dedupe`` are compiled although their classes are subclassed outside
the core: they are marked ``mypyc_attr(allow_interpreted_subclasses=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

SOURCES = Path(__file__).resolve().parent
#: Modules left as Python (see the module docstring).
NOT_COMPILED = frozenset({"__init__", "native", "mypycbuild"})
MANIFEST = "manifest.json"
#: The file in :func:`native_dir` naming the build in use (a subdirectory).
CURRENT = "current"
MODES = ("auto", "pure", "native")


@dataclass
class Status:
    """Which core this process runs, and why."""

    mode: str
    active: bool = False
    reason: str = ""
    where: str = ""
    modules: dict[str, str] = field(default_factory=dict)  # module -> source sha256

    def loaded(self) -> dict[str, bool]:
        """Of the compiled modules imported so far: whether each is the compiled one."""
        out: dict[str, bool] = {}
        for name in self.modules:
            module = sys.modules.get(f"pipeline.core.{name}")
            if module is not None:
                out[name] = not str(getattr(module, "__file__", "")).endswith(".py")
        return out


STATUS = Status(mode="auto", reason="not activated")


def native_dir() -> Path:
    """Where the build lives: ``$PULSE_CORE_DIR``, else ``<sys.prefix>/pulse-core-native``."""
    return Path(os.environ.get("PULSE_CORE_DIR") or Path(sys.prefix) / "pulse-core-native")


def abi() -> str:
    return f"{sys.implementation.cache_tag} {sysconfig.get_config_var('SOABI')}"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled_sources() -> dict[str, str]:
    """``{module: sha256 of its source}`` of the modules a build compiles."""
    return {p.stem: _sha(p) for p in sorted(SOURCES.glob("*.py")) if p.stem not in NOT_COMPILED}


def build_id(modules: dict[str, str]) -> str:
    """The name of a build of these sources for this Python (a subdirectory of the root)."""
    text = json.dumps({"abi": abi(), "modules": modules}, sort_keys=True)
    return "b-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def current_build(root: Path) -> Path:
    """The build in use under ``root``: ``root/<current>``.

    Each build has its own directory, so a rebuild never replaces the files
    of a build a running process has loaded (it may still import from it).
    """
    try:
        name = (root / CURRENT).read_text().strip()
    except OSError:
        return root / "none"
    return root / (name or "none")


def check(root: Path) -> tuple[bool, str, dict[str, str]]:
    """Whether the current build under ``root`` fits this Python and these sources; why not."""
    where = current_build(root)
    try:
        manifest = json.loads((where / MANIFEST).read_text())
    except FileNotFoundError:
        return False, f"no compiled core in {root} (python -m pipeline.core.mypycbuild build)", {}
    except (OSError, ValueError) as exc:
        return False, f"unreadable manifest in {where}: {exc}", {}
    modules: dict[str, str] = manifest.get("modules") or {}
    if manifest.get("abi") != abi():
        return False, f"built for {manifest.get('abi')}, this is {abi()}", modules
    current = compiled_sources()
    changed = sorted(m for m in set(current) | set(modules) if current.get(m) != modules.get(m))
    if changed:
        return False, f"sources changed since the build: {', '.join(changed)}", modules
    return True, f"compiled by mypyc {manifest.get('mypy', '?')}", modules


def activate(package_path: list[str]) -> Status:
    """Put the compiled modules ahead of the sources if they match (see the module doc)."""
    mode = os.environ.get("PULSE_CORE", "auto") or "auto"
    if mode not in MODES:
        raise ImportError(f"PULSE_CORE={mode!r}: expected one of {', '.join(MODES)}")
    where = native_dir()
    STATUS.mode, STATUS.where, STATUS.active, STATUS.modules = mode, str(where), False, {}
    if mode == "pure":
        STATUS.reason = "PULSE_CORE=pure"
        return STATUS
    ok, reason, modules = check(where)
    STATUS.reason, STATUS.modules = reason, modules
    if not ok:
        if mode == "native":
            raise ImportError(f"PULSE_CORE=native but the compiled core is unusable: {reason}")
        return STATUS
    where = current_build(where)
    STATUS.where = str(where)
    package_path.insert(0, str(where / "core"))
    sys.path.append(str(where / "lib"))  # mypyc's shared library, imported by each module
    STATUS.active = True
    return STATUS
