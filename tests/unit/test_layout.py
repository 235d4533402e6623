"""The layout that docs/architecture.md draws: packages by role, imports one way, small modules."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "pipeline"
MAX_LINES = 400
ROLE_PACKAGES = [
    "core", "contract", "topology", "worker", "profiles", "deliver", "tools",
    "tools/localkafka", "cli",
]  # fmt: skip


def contracts() -> list[dict]:  # type: ignore[type-arg]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]  # type: ignore[no-any-return]


def test_the_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is a dev dependency (pyproject.toml)"
    done = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_every_top_level_module_is_in_a_layer() -> None:
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    named = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    present = {p.stem for p in PIPELINE.glob("*.py") if p.stem != "__init__"}
    present |= {p.parent.name for p in PIPELINE.glob("*/__init__.py")}
    assert present == named, "add the new module to a layer in pyproject.toml"


@pytest.mark.parametrize("package", ROLE_PACKAGES)
def test_each_package_says_what_it_owns_and_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse((PIPELINE / package / "__init__.py").read_text()))
    assert doc, f"pipeline/{package}/__init__.py has no docstring"
    assert "May import" in doc, f"pipeline/{package}: say what it may import"


def test_no_module_over_400_lines() -> None:
    big = {
        str(p.relative_to(ROOT)): n
        for tree in ("pipeline", "bench")
        for p in (ROOT / tree).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"split these by concept: {big}"


def test_the_core_imports_nothing_of_pulse_but_errors_even_for_types() -> None:
    """Stricter than the contracts, which leave out imports under TYPE_CHECKING."""
    for path in (PIPELINE / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "pipeline" or name.startswith("pipeline."):
                    assert name.startswith("pipeline.core") or name == "pipeline.errors", (
                        f"{path.name} imports {name}"
                    )
