"""The jar lock and the verified fetch, against a file:// Maven repository (no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.errors import KafkaLauncherError
from pipeline.tools.localkafka import jars as kafka_jars
from pipeline.tools.localkafka.jars import Jar, JarLock


def jar_for(data: bytes, artifact: str = "demo", version: str = "1.0") -> Jar:
    return Jar(
        "org.example",
        artifact,
        version,
        sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def publish(repo: Path, jar: Jar, data: bytes) -> None:
    path = Path(jar.url(str(repo)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def quiet(_: str) -> None:
    pass


def test_url_follows_maven_layout() -> None:
    jar = Jar("org.apache.kafka", "kafka_2.13", "4.1.1", sha1="0" * 40, sha256="0" * 64)
    assert jar.url("https://repo.example/maven2/") == (
        "https://repo.example/maven2/org/apache/kafka/kafka_2.13/4.1.1/kafka_2.13-4.1.1.jar"
    )
    assert jar.filename == "kafka_2.13-4.1.1.jar"


def test_lock_round_trips_through_its_text() -> None:
    lock = JarLock("4.1.1", (jar_for(b"a", "a"), jar_for(b"b", "b")))
    text = lock.render(header="what this is\nhow to regenerate")
    assert text.startswith("# what this is\n# how to regenerate\nkafka 4.1.1\n")
    assert JarLock.parse(text) == lock


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kafka 4.1.1\norg.example:demo:1.0 abc def\n", "jars.lock:2: expected"),
        ("kafka 4.1.1\norg.example:demo " + "0" * 40 + " " + "0" * 64 + "\n", "jars.lock:2"),
        ("org.example:demo:1.0 " + "0" * 40 + " " + "0" * 64 + "\n", "needs a 'kafka <version>'"),
        ("kafka 4.1.1\n", "needs a 'kafka <version>' line and jar lines"),
    ],
)
def test_malformed_lock_says_where(text: str, message: str) -> None:
    with pytest.raises(KafkaLauncherError, match=message):
        JarLock.parse(text)


def test_repo_from_env() -> None:
    assert kafka_jars.repo_from_env({}) == kafka_jars.MAVEN_CENTRAL
    assert kafka_jars.repo_from_env({"PULSE_MAVEN_REPO": "file:///srv/m2/"}) == "file:///srv/m2"
    with pytest.raises(KafkaLauncherError, match="is not an https://"):
        kafka_jars.repo_from_env({"PULSE_MAVEN_REPO": "ftp://mirror/maven2"})


def test_fetch_verifies_and_writes_the_marker_last(tmp_path: Path) -> None:
    repo, lib = tmp_path / "repo", tmp_path / "lib"
    jar = jar_for(b"bytes of a jar")
    publish(repo, jar, b"bytes of a jar")
    lock = JarLock("4.1.1", (jar,))
    assert not kafka_jars.is_complete(lib, lock)
    kafka_jars.fetch(lib, lock, repo.as_uri(), echo=quiet)
    assert (lib / jar.filename).read_bytes() == b"bytes of a jar"
    assert (lib / kafka_jars.MARKER).read_text() == f"{jar.sha256}  {jar.filename}\n"
    assert kafka_jars.is_complete(lib, lock)
    assert kafka_jars.classpath(lib, lock) == str(lib / jar.filename)
    assert sorted(path.name for path in lib.iterdir()) == sorted([jar.filename, ".complete"])


def test_a_jar_that_does_not_match_the_lock_is_not_kept(tmp_path: Path) -> None:
    repo, lib = tmp_path / "repo", tmp_path / "lib"
    jar = jar_for(b"the real jar")
    publish(repo, jar, b"something else")
    with pytest.raises(KafkaLauncherError) as info:
        kafka_jars.fetch(lib, JarLock("4.1.1", (jar,)), repo.as_uri(), echo=quiet)
    text = str(info.value)
    assert f"{jar.url(repo.as_uri())} does not match the lock" in text
    assert f"expected sha1 {jar.sha1}, sha256 {jar.sha256}" in text
    assert list(lib.iterdir()) == []  # neither the jar nor a .part file nor the marker


def test_jars_already_there_are_verified_not_downloaded(tmp_path: Path) -> None:
    """A folder filled by Maven (old marker or none) is adopted without the network."""
    lib = tmp_path / "lib"
    jar = jar_for(b"from maven")
    lib.mkdir()
    (lib / jar.filename).write_bytes(b"from maven")
    (lib / kafka_jars.MARKER).write_text(f"{jar.filename}\n")  # the old, names-only marker
    seen: list[str] = []
    lock = JarLock("4.1.1", (jar,))
    kafka_jars.fetch(lib, lock, (tmp_path / "no-such-repo").as_uri(), echo=seen.append)
    assert seen == []
    assert kafka_jars.is_complete(lib, lock)


def test_a_changed_lock_makes_the_folder_incomplete(tmp_path: Path) -> None:
    repo, lib = tmp_path / "repo", tmp_path / "lib"
    old, new = jar_for(b"v1", version="1.0"), jar_for(b"v2", version="2.0")
    publish(repo, old, b"v1")
    publish(repo, new, b"v2")
    kafka_jars.fetch(lib, JarLock("4.1.1", (old,)), repo.as_uri(), echo=quiet)
    lock = JarLock("4.1.1", (new,))
    assert not kafka_jars.is_complete(lib, lock)
    kafka_jars.fetch(lib, lock, repo.as_uri(), echo=quiet)
    assert kafka_jars.classpath(lib, lock) == str(lib / "demo-2.0.jar")  # not demo-1.0.jar


def test_missing_artifact_is_reported_with_its_url(tmp_path: Path) -> None:
    jar = jar_for(b"x")
    repo = (tmp_path / "empty").as_uri()
    with pytest.raises(KafkaLauncherError, match=r"could not download file://.*demo-1\.0\.jar"):
        kafka_jars.fetch(tmp_path / "lib", JarLock("4.1.1", (jar,)), repo, echo=quiet)
