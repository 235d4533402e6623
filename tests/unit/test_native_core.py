"""The compiled core (pipeline.core.native): used only when it matches the sources.

``PULSE_CORE=native`` (CI) makes the suite run on the compiled modules and
fails here if any imported core module is the pure one; ``PULSE_CORE=pure``
the other way round. The build itself is not run here (about a minute):
``make setup`` runs it, and these tests check what it left.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest

from pipeline.core import native


def _import_all() -> dict[str, bool]:
    for name in native.compiled_sources():
        importlib.import_module(f"pipeline.core.{name}")
    return {
        name: not str(importlib.import_module(f"pipeline.core.{name}").__file__).endswith(".py")
        for name in native.compiled_sources()
    }


def test_the_core_in_use_is_the_one_status_reports() -> None:
    compiled = _import_all()
    if native.STATUS.active:
        assert all(compiled.values()), compiled
    else:
        assert not any(compiled.values()), compiled
    mode = os.environ.get("PULSE_CORE", "auto")
    if mode == "native":
        assert native.STATUS.active, native.STATUS.reason
    if mode == "pure":
        assert not native.STATUS.active


def _manifest(root: Path, **changes: object) -> None:
    """A build's manifest under ``root`` (no modules: check reads only the manifest)."""
    where = root / "b-test"
    where.mkdir(parents=True, exist_ok=True)
    manifest = {"abi": native.abi(), "mypy": "x", "modules": native.compiled_sources()}
    manifest.update(changes)
    (where / native.MANIFEST).write_text(json.dumps(manifest))
    (root / native.CURRENT).write_text("b-test\n")


def test_a_build_of_these_sources_for_this_python_is_usable(tmp_path: Path) -> None:
    _manifest(tmp_path)
    ok, reason, _ = native.check(tmp_path)
    assert ok, reason
    assert native.current_build(tmp_path) == tmp_path / "b-test"


def test_the_build_in_use_is_the_one_current_names(tmp_path: Path) -> None:
    _manifest(tmp_path)
    (tmp_path / native.CURRENT).write_text("b-other\n")
    ok, reason, _ = native.check(tmp_path)
    assert not ok
    assert "no compiled core" in reason


def test_a_build_is_named_by_its_sources_and_python() -> None:
    modules = native.compiled_sources()
    assert native.build_id(modules) == native.build_id(dict(modules))
    assert native.build_id(modules) != native.build_id({**modules, "engine": "0" * 64})


def test_one_edited_source_makes_the_whole_build_unusable(tmp_path: Path) -> None:
    modules = native.compiled_sources()
    modules["engine"] = "0" * 64
    _manifest(tmp_path, modules=modules)
    ok, reason, _ = native.check(tmp_path)
    assert not ok
    assert "engine" in reason


def test_a_new_module_is_a_change_too(tmp_path: Path) -> None:
    modules = native.compiled_sources()
    del modules["folds"]
    _manifest(tmp_path, modules=modules)
    assert not native.check(tmp_path)[0]


def test_a_build_for_another_python_is_unusable(tmp_path: Path) -> None:
    _manifest(tmp_path, abi="cpython-399 other")
    ok, reason, _ = native.check(tmp_path)
    assert not ok
    assert "cpython-399" in reason


def test_no_build_means_pure_python_unless_native_is_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = native.Status(**vars(native.STATUS))
    monkeypatch.setenv("PULSE_CORE_DIR", str(tmp_path / "none"))
    try:
        for mode in ("auto", "pure"):
            monkeypatch.setenv("PULSE_CORE", mode)
            path: list[str] = []
            assert not native.activate(path).active
            assert path == []
        monkeypatch.setenv("PULSE_CORE", "native")
        with pytest.raises(ImportError, match="no compiled core"):
            native.activate([])
        monkeypatch.setenv("PULSE_CORE", "fast")
        with pytest.raises(ImportError, match="expected one of"):
            native.activate([])
    finally:
        vars(native.STATUS).update(vars(saved))
