"""Run a single-node Apache Kafka broker for development, from Maven Central jars.

``pulse kafka start|stop|status`` use this module. The broker is Apache Kafka in
KRaft combined mode (one process is both broker and controller), listening on
127.0.0.1 only; no Docker and no Kafka download other than Maven jars. Layout,
with ``home`` the Pulse home (``PULSE_HOME``, default ``./.pulse``)::

    <home>/kafka/
    ├── 4.1.1/lib/*.jar       fetched once by `mvn` from deploy/kafka/pom.xml;
    │   └── .complete         written after a successful fetch (lists the jars)
    ├── data/                 log.dirs, formatted once (meta.properties)
    ├── cluster.id            the cluster id the data dir was formatted with
    ├── server.properties     rendered on every start (ports may change)
    ├── log4j2.yaml           console logging at INFO
    ├── broker.log            the broker's stdout+stderr (previous run: broker.log.1)
    └── broker.pid            pid of the running broker

Environment: ``PULSE_KAFKA_PORT`` (default 9092), ``PULSE_KAFKA_CONTROLLER_PORT``
(default 9093), ``PULSE_KAFKA_LIB_DIR`` (share one jar folder between homes, e.g.
in tests), and ``KAFKA_BOOTSTRAP_SERVERS``: when set, ``start`` launches nothing
and only checks that this cluster answers.

Example::

    lk = LocalKafka.from_settings(Settings.from_env())
    bootstrap = start(lk)          # "127.0.0.1:9092" once the broker answers
    print(status(lk))              # running or not, pid, bootstrap, log path
    stop(lk)

A pid file whose process is gone (or now belongs to another program) is *stale*:
``status`` reports it and leaves it alone, ``start`` and ``stop`` remove it and
say so. POSIX only (``sh`` starts the detached broker, ``fcntl`` guards the fetch).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.config import Settings
from pipeline.errors import BrokerUnavailable, ConfigError, KafkaLauncherError

KAFKA_VERSION = "4.1.1"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
POM_PATH = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "pom.xml"
MIN_JAVA = 17
_MAX_PORT = 65535
EXTERNAL_CHECK_S = 15.0  # an external cluster should already be up: fail fast

Echo = Callable[[str], None]

_JVM_FLAGS = (
    "-Xmx512m",
    "-Xms512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)
# log4j's own shutdown hook would stop logging before Kafka logs its shutdown.
LOG4J2_YAML = """\
Configuration:
  shutdownHook: disable
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
"""
# The broker outlives `pulse kafka start`: a short-lived sh puts it in the
# background and prints its pid, so the broker is never our child (no zombie,
# no Popen ResourceWarning) and its output goes straight to the log file.
_SPAWN = 'log=$1; shift; "$@" >"$log" 2>&1 </dev/null & echo $!'


@dataclass(frozen=True)
class LocalKafka:
    """Where and how the local broker runs. Build with :meth:`from_settings`.

    ``lib_dir`` overrides where the jars live (default ``<home>/kafka/<version>/lib``);
    ``external_bootstrap`` is set when ``KAFKA_BOOTSTRAP_SERVERS`` names a cluster
    to use instead of a local broker.
    """

    home: Path
    port: int
    controller_port: int
    kafka_version: str = KAFKA_VERSION
    lib_dir: Path | None = None
    external_bootstrap: str | None = None

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


def render_server_properties(lk: LocalKafka) -> str:
    """``server.properties`` for one loopback-only KRaft node sized for a small machine."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{lk.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{lk.port},CONTROLLER://127.0.0.1:{lk.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{lk.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(lk.data_dir),
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        # The 128 MiB default comes out of a 512 MiB heap; the cleaner stays on
        # because Faust changelog topics are compacted.
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "auto.create.topics.enable": "false",  # Pulse creates its topics explicitly
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


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
        probe = _Probe(lk.external_bootstrap)
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
    with _file_lock(lk.kafka_dir / ".start.lock"):
        return _start_local(lk, timeout_s, echo)


def _start_local(lk: LocalKafka, timeout_s: float, echo: Echo) -> str:
    st = status(lk)
    if st.running:
        echo(f"Kafka broker already running (pid {st.pid}) at {lk.bootstrap}")
        if not _Probe(lk.bootstrap).answers(timeout_s):
            raise KafkaLauncherError(
                f"the broker (pid {st.pid}) runs but does not answer at {lk.bootstrap}; "
                f"see {lk.log_path}, or restart it with `pulse kafka stop` then `start`"
            )
        return lk.bootstrap
    if st.stale_pid:
        lk.pid_file.unlink(missing_ok=True)
        echo(f"removed stale pid file {lk.pid_file} (pid {st.pid} is no longer a running broker)")
    java = _find_java()
    _check_port_free(lk.port, "PULSE_KAFKA_PORT")
    _check_port_free(lk.controller_port, "PULSE_KAFKA_CONTROLLER_PORT")
    _ensure_jars(lk, echo)
    _write_configs(lk)
    _ensure_formatted(lk, java, echo)
    began = time.monotonic()
    pid = _spawn(lk, java)
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
    pid = _read_pid(lk.pid_file)
    running = pid is not None and _is_our_broker(lk, pid)
    return BrokerStatus(
        running=running,
        pid=pid,
        bootstrap=lk.bootstrap,
        log_path=lk.log_path,
        stale_pid=lk.pid_file.exists() and not running,
        external_bootstrap=lk.external_bootstrap,
    )


def wait_for_broker(bootstrap: str, timeout_s: float) -> None:
    """Return once a broker at ``bootstrap`` answers a metadata request.

    Raises :class:`BrokerUnavailable` after ``timeout_s`` seconds, naming the
    address and the client's last connection error.
    """
    probe = _Probe(bootstrap)
    if not probe.answers(timeout_s):
        raise BrokerUnavailable(
            f"no Kafka broker answered at {bootstrap} within {timeout_s:g} s "
            f"({probe.last_error}); start one with `pulse kafka start` "
            "or set KAFKA_BOOTSTRAP_SERVERS"
        )


class _Probe:
    """One admin client, asked for metadata repeatedly; remembers the last error."""

    def __init__(self, bootstrap: str) -> None:
        self.last_error = "no error reported"
        try:
            self._client = AdminClient(
                {
                    "bootstrap.servers": bootstrap,
                    "log_level": 0,  # errors reach us via error_cb, not as stderr noise
                    "error_cb": self._on_error,
                    "reconnect.backoff.max.ms": 500,  # default 10 s would delay readiness
                }
            )
        except (KafkaException, ValueError, TypeError) as exc:
            raise BrokerUnavailable(f"bad Kafka bootstrap address {bootstrap!r}: {exc}") from exc

    def _on_error(self, err: KafkaError) -> None:
        if err.code() != KafkaError._ALL_BROKERS_DOWN:  # the transport error says more
            self.last_error = err.str()

    def answers(self, timeout_s: float) -> bool:
        try:
            self._client.list_topics(timeout=max(timeout_s, 0.1))
        except KafkaException:  # timeout or transport failure
            self._client.poll(0)  # runs error_cb with what went wrong
            return False
        return True


def _port_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigError(f"{name}={raw!r} is not a TCP port number")
    return int(raw)


def _find_java() -> str:
    """``$JAVA_HOME/bin/java`` like Kafka's scripts, else ``java`` on PATH; checks version >= 17."""
    home = os.environ.get("JAVA_HOME", "")
    java = str(Path(home, "bin", "java")) if home else ""
    if not (java and os.access(java, os.X_OK)):
        java = shutil.which("java") or ""
    if not java:
        raise KafkaLauncherError(
            "java not found on PATH: install Java 17+ "
            "(e.g. apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=30, check=False
    )
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if found:  # "1.8.0_x" means 8; unparseable output is let through
        major = int(found[2] or 0) if found[1] == "1" else int(found[1])
        if major < MIN_JAVA:
            raise KafkaLauncherError(
                f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+ "
                "(e.g. apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"
            )
    return java


def _check_port_free(port: int, env_name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the JVM's listener: TIME_WAIT leftovers of a stopped broker don't count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise KafkaLauncherError(f"cannot bind 127.0.0.1:{port}: {exc}") from exc
            raise KafkaLauncherError(
                f"port {port} on 127.0.0.1 is already in use by another process; "
                f"stop it or set {env_name}=<free port>"
            ) from None


def _jars_complete(lib: Path) -> bool:
    marker = lib / ".complete"
    if not marker.is_file():
        return False
    names = marker.read_text().split()
    return bool(names) and all((lib / name).is_file() for name in names)


def _ensure_jars(lk: LocalKafka, echo: Echo) -> None:
    """Fetch the broker's jars with Maven unless ``lk.lib`` already holds them all."""
    lib = lk.lib
    if _jars_complete(lib):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLauncherError(
            "mvn not found on PATH: install Maven (apt-get install maven) "
            "or set KAFKA_BOOTSTRAP_SERVERS to an existing cluster"
        )
    if not POM_PATH.is_file():
        raise KafkaLauncherError(
            f"{POM_PATH} is missing; the local broker is fetched from that file: restore it "
            "from the Pulse repository or set KAFKA_BOOTSTRAP_SERVERS to an existing cluster"
        )
    lib.mkdir(parents=True, exist_ok=True)
    with _file_lock(lib / ".fetch.lock"):
        if _jars_complete(lib):  # another process fetched them while we waited
            return
        echo(
            f"fetching Apache Kafka {lk.kafka_version} jars from Maven Central into {lib} "
            "(once) ..."
        )
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM_PATH),
            f"-Dkafka.version={lk.kafka_version}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        jars = sorted(path.name for path in lib.glob("*.jar"))
        if done.returncode != 0 or not jars:
            raise KafkaLauncherError(
                f"mvn could not fetch the Kafka {lk.kafka_version} jars (exit {done.returncode}); "
                "check access to Maven Central (proxy: ~/.m2/settings.xml):\n"
                + _last_lines(done.stdout + done.stderr)
            )
        _write_atomic(lib / ".complete", "\n".join(jars) + "\n")


def _write_configs(lk: LocalKafka) -> None:
    lk.data_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(lk.properties_path, render_server_properties(lk))
    _write_atomic(lk.kafka_dir / "log4j2.yaml", LOG4J2_YAML)


def new_cluster_id() -> str:
    """Draw a cluster id as ``StorageTool random-uuid`` prints it (22 URL-safe base64 chars).

    Kafka's ``Uuid.randomUuid()`` redraws ids whose text starts with ``-``
    (they read as command-line flags); so do we.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _ensure_formatted(lk: LocalKafka, java: str, echo: Echo) -> None:
    """Format ``data_dir`` once; the id in ``cluster.id`` is reused if it is formatted again."""
    if (lk.data_dir / "meta.properties").is_file():
        return
    id_file = lk.kafka_dir / "cluster.id"
    cluster_id = id_file.read_text().strip() if id_file.is_file() else ""
    if not cluster_id:
        cluster_id = new_cluster_id()
        _write_atomic(id_file, cluster_id + "\n")
    echo(f"formatting {lk.data_dir} (cluster id {cluster_id})")
    argv = [
        java,
        *_java_props(lk),
        "-cp",
        str(lk.lib / "*"),
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(lk.properties_path),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise KafkaLauncherError(
            f"formatting {lk.data_dir} failed (exit {done.returncode}); if it holds data "
            f"from another cluster, move it away:\n{_last_lines(done.stdout + done.stderr)}"
        )


def _java_props(lk: LocalKafka) -> list[str]:
    return [
        f"-Dlog4j2.configurationFile={lk.kafka_dir / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={lk.kafka_dir}",
    ]


def _spawn(lk: LocalKafka, java: str) -> int:
    """Start the broker detached (own session, output to the log); write and return its pid."""
    if lk.log_path.exists():
        lk.log_path.replace(lk.log_path.with_name(lk.log_path.name + ".1"))
    argv = [
        java,
        *_JVM_FLAGS,
        *_java_props(lk),
        "-cp",
        str(lk.lib / "*"),
        "kafka.Kafka",
        str(lk.properties_path),
    ]
    done = subprocess.run(
        ["/bin/sh", "-c", _SPAWN, "sh", str(lk.log_path), *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=lk.kafka_dir,
        start_new_session=True,
    )
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise KafkaLauncherError(f"could not launch the broker: {done.stderr.strip()}")
    pid = int(done.stdout)
    _write_atomic(lk.pid_file, f"{pid}\n")
    return pid


def _await_ready(lk: LocalKafka, pid: int, timeout_s: float) -> None:
    """Poll until the broker answers; fail with the log's tail if it dies or times out."""
    probe = _Probe(lk.bootstrap)
    deadline = time.monotonic() + timeout_s
    while not probe.answers(min(1.0, max(deadline - time.monotonic(), 0.1))):
        if not _is_our_broker(lk, pid):
            lk.pid_file.unlink(missing_ok=True)
            raise KafkaLauncherError(
                f"the Kafka broker exited during startup; see {lk.log_path}, last lines:\n"
                + _last_lines(_read_tail(lk.log_path))
            )
        if time.monotonic() >= deadline:
            if not _signal_and_wait(lk, pid, signal.SIGTERM, 10.0):
                _signal_and_wait(lk, pid, signal.SIGKILL, 10.0)
            lk.pid_file.unlink(missing_ok=True)
            raise KafkaLauncherError(
                f"the Kafka broker did not answer at {lk.bootstrap} within {timeout_s:g} s and "
                f"was stopped; retry with a longer timeout or see {lk.log_path}:\n"
                + _last_lines(_read_tail(lk.log_path))
            )


def _read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def _is_our_broker(lk: LocalKafka, pid: int) -> bool:
    """Tell whether ``pid`` is alive and is this home's broker (not a reused pid, not a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()  # empty for zombies
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False  # Linux: the process is gone
        done = subprocess.run(  # no /proc (macOS)
            ["/bin/ps", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            check=False,
        )
        raw = done.stdout
    except PermissionError:
        return False
    return str(lk.properties_path).encode() in raw


def _signal_and_wait(lk: LocalKafka, pid: int, sig: signal.Signals, timeout_s: float) -> bool:
    """Send ``sig`` and wait up to ``timeout_s`` for the process to go; True if it went."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    except PermissionError as exc:
        raise KafkaLauncherError(f"not allowed to signal pid {pid}: stop it as its owner") from exc
    deadline = time.monotonic() + timeout_s
    while _is_our_broker(lk, pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _read_tail(path: Path, max_bytes: int = 64 * 1024) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(path.stat().st_size - max_bytes, 0))
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _last_lines(text: str, count: int = 20) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(f"  | {line}" for line in lines[-count:]) or "  | (no output)"
