"""The local broker's jars: a checked-in lock, fetched from Maven Central and verified.

``deploy/kafka/jars.lock`` lists every jar of the broker's runtime classpath
(``deploy/kafka/pom.xml`` resolved once by Maven, see ``scripts/lock-kafka-jars.py``)
with its SHA-1 and SHA-256. ``pulse kafka start`` downloads the jars straight
from the repository, so neither Maven nor a JDK is needed for it, and keeps a
jar only when both digests match the lock. Example::

    lock = JarLock.read()                    # Kafka 4.1.1, 46 jars
    if not is_complete(lib, lock):
        fetch(lib, lock, repo_from_env())    # downloads only what is missing or wrong
    classpath(lib, lock)                     # "lib/a.jar:lib/b.jar:..." in lock order

``PULSE_MAVEN_REPO`` names a Maven mirror to use instead of Maven Central (any
repository with the standard layout; ``file://`` URLs work too). HTTP(S)
proxies come from the usual ``https_proxy`` variables.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import KafkaLauncherError

LOCK_PATH = Path(__file__).resolve().parents[3] / "deploy" / "kafka" / "jars.lock"
MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2"
MARKER = ".complete"  # written last: "<sha256>  <file>" per jar, as sha256sum prints
_ATTEMPTS = 3  # per jar, for network errors; a digest mismatch is never retried
_WORKERS = 4
_CHUNK = 1 << 16

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Jar:
    """One Maven artifact (``group:artifact:version``, packaging jar) and its digests."""

    group: str
    artifact: str
    version: str
    sha1: str
    sha256: str

    @property
    def coordinates(self) -> str:
        """``group:artifact:version``."""
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def filename(self) -> str:
        """The file name Maven gives it, e.g. ``kafka-clients-4.1.1.jar``."""
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repo: str) -> str:
        """Its address in a repository with Maven's layout."""
        group_path = self.group.replace(".", "/")
        return f"{repo.rstrip('/')}/{group_path}/{self.artifact}/{self.version}/{self.filename}"


@dataclass(frozen=True)
class JarLock:
    """The parsed lock file: the Kafka version it is for and its jars, in file order."""

    kafka_version: str
    jars: tuple[Jar, ...]

    @classmethod
    def read(cls, path: Path = LOCK_PATH, kafka_version: str | None = None) -> JarLock:
        """Parse ``path``, which must be for ``kafka_version`` if one is given.

        A missing or malformed file, or one for another version, is a
        :class:`KafkaLauncherError`.
        """
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise KafkaLauncherError(
                f"{path} is missing; the local broker's jars are listed there: restore it from "
                "the Pulse repository or set KAFKA_BOOTSTRAP_SERVERS to an existing cluster"
            ) from None
        lock = cls.parse(text, source=str(path))
        if kafka_version is not None and lock.kafka_version != kafka_version:
            raise KafkaLauncherError(
                f"{path} lists the jars of Kafka {lock.kafka_version}, not {kafka_version}; "
                "regenerate it with scripts/lock-kafka-jars.py"
            )
        return lock

    @classmethod
    def parse(cls, text: str, source: str = "jars.lock") -> JarLock:
        """Read ``kafka <version>`` then ``group:artifact:version sha1 sha256`` lines."""
        version = ""
        jars: list[Jar] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if fields[0] == "kafka" and len(fields) == 2 and not version:
                version = fields[1]
                continue
            coords = fields[0].split(":")
            digests_ok = len(fields) == 3 and _is_hex(fields[1], 40) and _is_hex(fields[2], 64)
            if len(coords) != 3 or not digests_ok:
                raise KafkaLauncherError(
                    f"{source}:{number}: expected 'group:artifact:version <sha1> <sha256>', "
                    f"got {raw.strip()!r}"
                )
            group, artifact, version_ = coords
            jars.append(Jar(group, artifact, version_, sha1=fields[1], sha256=fields[2]))
        if not version or not jars:
            raise KafkaLauncherError(f"{source}: needs a 'kafka <version>' line and jar lines")
        return cls(kafka_version=version, jars=tuple(jars))

    def render(self, header: str = "") -> str:
        """The lock file's text; ``header`` lines become comments."""
        lines = [f"# {line}".rstrip() for line in header.splitlines()]
        lines.append(f"kafka {self.kafka_version}")
        lines += [f"{jar.coordinates} {jar.sha1} {jar.sha256}" for jar in self.jars]
        return "\n".join(lines) + "\n"


def repo_from_env(env: Mapping[str, str] | None = None) -> str:
    """``PULSE_MAVEN_REPO`` if set, else Maven Central."""
    env = os.environ if env is None else env
    repo = env.get("PULSE_MAVEN_REPO", "").strip().rstrip("/") or MAVEN_CENTRAL
    if urllib.parse.urlsplit(repo).scheme not in ("https", "http", "file"):
        raise KafkaLauncherError(
            f"PULSE_MAVEN_REPO={repo!r} is not an https://, http:// or file:// URL"
        )
    return repo


def is_complete(lib: Path, lock: JarLock) -> bool:
    """True when ``lib`` was verified against exactly this lock and no jar went missing."""
    marker = lib / MARKER
    return (
        marker.is_file()
        and marker.read_text() == _marker_text(lock)
        and all((lib / jar.filename).is_file() for jar in lock.jars)
    )


def classpath(lib: Path, lock: JarLock) -> str:
    """The locked jars, and only those, as a ``java -cp`` argument."""
    return os.pathsep.join(str(lib / jar.filename) for jar in lock.jars)


def fetch(lib: Path, lock: JarLock, repo: str, echo: Echo = print) -> None:
    """Make ``lib`` hold every locked jar with matching digests, then write the marker.

    Jars already there with the right SHA-256 are kept (a folder filled by
    Maven upgrades without a download); others are downloaded, four at a
    time, to a temporary name and renamed only once both digests match.
    Callers serialise concurrent fetches into one ``lib`` (``kafka_local``
    holds a file lock). Raises :class:`KafkaLauncherError` naming the jar's URL.
    """
    lib.mkdir(parents=True, exist_ok=True)
    todo = [jar for jar in lock.jars if _sha256_of(lib / jar.filename) != jar.sha256]
    if todo:
        echo(
            f"fetching {len(todo)} of {len(lock.jars)} Apache Kafka {lock.kafka_version} jars "
            f"from {repo} into {lib} (once) ..."
        )
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            sizes = list(pool.map(lambda jar: _download(jar, repo, lib), todo))
        echo(
            f"fetched {sum(sizes) / 1e6:.1f} MB in {time.monotonic() - began:.1f} s; "
            "SHA-1 and SHA-256 match the lock"
        )
    marker = lib / MARKER
    tmp = marker.with_name(f".{MARKER}.{os.getpid()}.tmp")
    tmp.write_text(_marker_text(lock))
    tmp.replace(marker)


def _marker_text(lock: JarLock) -> str:
    return "".join(f"{jar.sha256}  {jar.filename}\n" for jar in lock.jars)


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def _sha256_of(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def _download(jar: Jar, repo: str, lib: Path) -> int:
    """Download ``jar`` into ``lib`` and verify it; return its size in bytes."""
    url = jar.url(repo)
    part = lib / f".{jar.filename}.{os.getpid()}.part"
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            sha1, sha256, size = _copy_url(url, part)
            break
        except (OSError, http.client.HTTPException) as exc:
            part.unlink(missing_ok=True)
            http_4xx = isinstance(exc, urllib.error.HTTPError) and exc.code < 500
            permanent = http_4xx or url.startswith("file:")  # retrying would not help
            if permanent or attempt == _ATTEMPTS:
                raise KafkaLauncherError(
                    f"could not download {url}: {exc}; check the network, or set "
                    "PULSE_MAVEN_REPO to a Maven mirror, or KAFKA_BOOTSTRAP_SERVERS "
                    "to an existing cluster"
                ) from exc
            time.sleep(attempt)
    if (sha1, sha256) != (jar.sha1, jar.sha256):
        part.unlink(missing_ok=True)
        raise KafkaLauncherError(
            f"{url} does not match the lock (sha1 {sha1}, sha256 {sha256}; expected "
            f"sha1 {jar.sha1}, sha256 {jar.sha256}); it was not kept. A corrupt download "
            "or a mirror serving another file: retry, or check PULSE_MAVEN_REPO"
        )
    part.replace(lib / jar.filename)
    return size


def _copy_url(url: str, dest: Path) -> tuple[str, str, int]:
    """Stream ``url`` into ``dest``; return its SHA-1, SHA-256 and size."""
    sha1, sha256, size = hashlib.sha1(usedforsecurity=False), hashlib.sha256(), 0
    # The scheme is one of https, http, file: repo_from_env checks it.
    request = urllib.request.Request(url, headers={"User-Agent": "pulse-kafka-launcher"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=60) as response, dest.open("wb") as out:  # noqa: S310
        while chunk := response.read(_CHUNK):
            sha1.update(chunk)
            sha256.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return sha1.hexdigest(), sha256.hexdigest(), size
