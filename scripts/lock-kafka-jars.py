#!/usr/bin/env python3
"""Regenerate deploy/kafka/jars.lock from deploy/kafka/pom.xml. For maintainers: needs Maven.

    .venv/bin/python scripts/lock-kafka-jars.py            # after editing pom.xml
    .venv/bin/python scripts/lock-kafka-jars.py --check    # the lock still matches the POM

Maven resolves the broker's runtime classpath from the POM into its local
repository. Each jar's SHA-1 is compared with the ``.sha1`` file the repository
publishes beside it (PULSE_MAVEN_REPO, default Maven Central), so a local
repository that holds something else is caught, and the lock records SHA-1 and
SHA-256 for ``pulse kafka start`` to verify its own downloads against. Users
never run this: they fetch what the lock names, without Maven.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from pipeline.tools.localkafka.jars import LOCK_PATH, Jar, JarLock, repo_from_env

POM = LOCK_PATH.with_name("pom.xml")
HEADER = """\
The local broker's runtime classpath: deploy/kafka/pom.xml resolved by Maven
(runtime scope). `pulse kafka start` downloads each jar from Maven Central (or
PULSE_MAVEN_REPO) and keeps it only if both digests match.
Regenerate after editing pom.xml: .venv/bin/python scripts/lock-kafka-jars.py
group:artifact:version sha1 sha256"""


def resolve(pom: Path) -> list[tuple[str, str, str, Path]]:
    """Ask Maven for the runtime classpath: (group, artifact, version, local file) per jar."""
    mvn = shutil.which("mvn")
    if mvn is None:
        sys.exit("mvn not found on PATH: regenerating the lock needs Maven (apt-get install maven)")
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "deps.txt"
        subprocess.run(
            [
                mvn, "-q", "-B", "-f", str(pom), "dependency:list",
                "-DincludeScope=runtime", "-DoutputAbsoluteArtifactFilename=true",
                f"-DoutputFile={listing}",
            ],
            check=True,
        )
        lines = listing.read_text().splitlines()
    found = []
    for line in lines:
        # group:artifact:type[:classifier]:version:scope:/absolute/path
        parts = line.strip().split(":")
        if len(parts) < 6 or not parts[-1].startswith("/"):
            continue
        if len(parts) != 6 or parts[2] != "jar":
            sys.exit(f"cannot lock {line.strip()!r}: only plain jars without a classifier")
        group, artifact, _type, version, _scope, path = parts
        found.append((group, artifact, version, Path(path)))
    return sorted(found)


def lock_jar(group: str, artifact: str, version: str, path: Path, repo: str) -> Jar:
    data = path.read_bytes()
    jar = Jar(
        group,
        artifact,
        version,
        sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    with urllib.request.urlopen(jar.url(repo) + ".sha1", timeout=60) as response:  # noqa: S310
        published = re.split(r"\s+", response.read().decode().strip())[0].lower()
    if published != jar.sha1:
        sys.exit(f"{path}: sha1 {jar.sha1}, but the repository publishes {published}")
    return jar


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if version is None:
        sys.exit(f"{POM}: no <kafka.version> property")
    repo = repo_from_env()
    jars = tuple(lock_jar(*found, repo=repo) for found in resolve(POM))
    text = JarLock(kafka_version=version[1], jars=jars).render(HEADER)
    if args.check:
        same = LOCK_PATH.is_file() and LOCK_PATH.read_text() == text
        print(f"{LOCK_PATH}: {'up to date' if same else 'differs from what pom.xml resolves to'}")
        return 0 if same else 1
    LOCK_PATH.write_text(text)
    print(f"wrote {LOCK_PATH}: Kafka {version[1]}, {len(jars)} jars, SHA-1 checked at {repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
