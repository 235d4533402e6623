"""Compile ``pipeline/core`` with mypyc into :func:`~pipeline.core.native.native_dir`.

    python -m pipeline.core.mypycbuild build [--or-pure]
    python -m pipeline.core.mypycbuild status

See :mod:`pipeline.core.native` for what is compiled, where it goes and when it
is used. ``make setup`` runs ``build --or-pure``: without a C compiler or
Python's headers the core stays pure Python.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.core.native import (
    CURRENT,
    MANIFEST,
    SOURCES,
    STATUS,
    abi,
    build_id,
    check,
    compiled_sources,
    native_dir,
)


def build(root: Path, keep: int = 3) -> float:
    """Compile the core into a new build under ``root`` and make it current; returns seconds.

    The ``keep`` most recent builds stay (a running process may still import
    from the one it started with); older ones are deleted.
    """
    started = time.perf_counter()
    modules = compiled_sources()
    where = root / build_id(modules)
    root.mkdir(parents=True, exist_ok=True)
    if not (where / MANIFEST).exists():
        _compile(modules, root, where)
    pointer = root / f".{CURRENT}.{os.getpid()}"
    pointer.write_text(where.name + "\n")
    pointer.replace(root / CURRENT)
    builds = sorted(
        (p for p in root.glob("b-*") if p.is_dir() and p != where),
        key=lambda p: p.stat().st_mtime,
    )
    for old in builds[: max(0, len(builds) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return time.perf_counter() - started


def _compile(modules: dict[str, str], root: Path, where: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="pulse-mypyc-") as tmp:
        work = Path(tmp)
        shutil.copytree(
            SOURCES.parent, work / "pipeline", ignore=shutil.ignore_patterns("__pycache__", "*.so")
        )
        paths = [f"pipeline/core/{m}.py" for m in modules]
        done = subprocess.run(
            [sys.executable, "-m", "mypyc", *paths],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mypyc failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        staged = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
        try:
            (staged / "core").mkdir()
            (staged / "lib").mkdir()
            for m in modules:
                found = list((work / "pipeline/core").glob(f"{m}.*.so"))
                if len(found) != 1:
                    raise RuntimeError(f"mypyc built {len(found)} extension modules for {m}")
                shutil.copy2(found[0], staged / "core" / found[0].name)
            for lib in work.glob("*__mypyc.*.so"):
                shutil.copy2(lib, staged / "lib" / lib.name)
            from mypy.version import __version__ as mypy_version

            manifest = {"abi": abi(), "mypy": mypy_version, "modules": modules}
            (staged / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            staged.rename(where)
        finally:
            if staged.exists():
                shutil.rmtree(staged)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.core.mypycbuild", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile pipeline/core with mypyc")
    b.add_argument(
        "--or-pure",
        action="store_true",
        help="if compiling fails, say why and exit 0: the core runs as pure Python",
    )
    sub.add_parser("status", help="which core this interpreter runs")
    args = p.parse_args(argv)
    where = native_dir()
    if args.command == "status":
        status = STATUS
        print(f"PULSE_CORE={status.mode}: {'compiled' if status.active else 'pure Python'}")
        print(f"  {status.reason} ({status.where})")
        return 0
    ok, _, _ = check(where)
    if ok:
        print(f"pipeline/core: the compiled core in {where} is up to date")
        return 0
    where.parent.mkdir(parents=True, exist_ok=True)
    print(f"pipeline/core: compiling with mypyc under {where} (about a minute) ...", flush=True)
    try:
        seconds = build(where)
    except (RuntimeError, OSError, ImportError, subprocess.SubprocessError) as exc:
        if not args.or_pure:
            raise
        (where / CURRENT).unlink(missing_ok=True)  # (a stale build is never used anyway)
        print(f"pipeline/core: not compiled, the core runs as pure Python: {exc}", flush=True)
        return 0
    print(f"pipeline/core: compiled in {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
