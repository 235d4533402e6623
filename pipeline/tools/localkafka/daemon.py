"""A detached background process tracked by a pid file; its ports; small file helpers.

The local Kafka broker outlives ``pulse kafka start``: :func:`spawn` starts it
in its own session through a short-lived ``sh`` that prints its pid, so it is
never our child (no zombie, no Popen ResourceWarning) and its output goes
straight to a log file. A pid alone is not trusted: :func:`is_running` also
looks for a marker (e.g. the path of the broker's config) in the process's
command line, so a pid reused after a reboot never counts. POSIX only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.errors import KafkaLauncherError

_SPAWN = 'log=$1; shift; "$@" >"$log" 2>&1 </dev/null & echo $!'


def spawn(argv: Sequence[str], log_path: Path, cwd: Path) -> int:
    """Start ``argv`` detached with stdout and stderr to ``log_path``; return its pid."""
    done = subprocess.run(
        ["/bin/sh", "-c", _SPAWN, "sh", str(log_path), *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
        start_new_session=True,
    )
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise KafkaLauncherError(f"could not launch {argv[0]}: {done.stderr.strip()}")
    return int(done.stdout)


def read_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file``, or None if it is missing or garbled."""
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_running(pid: int, marker: bytes) -> bool:
    """Tell whether ``pid`` is alive, not a zombie, and has ``marker`` in its command line."""
    return marker in _cmdline(pid)


def is_gone(pid: int, marker: bytes) -> bool:
    """Tell whether ``pid`` has fully exited: no such process, a zombie, or another program.

    A killed process drops its memory, so its command line reads empty, before
    all its threads have exited and closed its files: for that moment it no
    longer looks like ours but may still hold its ports, and is not gone.
    """
    if all(state in "ZX" for state in _states(pid)):  # also true when there is no process
        return True
    cmdline = _cmdline(pid)
    return cmdline != b"" and marker not in cmdline  # a reused pid: not ours


def wait_gone(pid: int, marker: bytes, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for :func:`is_gone`; True if it is."""
    deadline = time.monotonic() + timeout_s
    while not is_gone(pid, marker):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def signal_and_wait(pid: int, marker: bytes, sig: signal.Signals, timeout_s: float) -> bool:
    """Send ``sig`` and wait up to ``timeout_s`` for the process to be gone; True if it is."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    except PermissionError as exc:
        raise KafkaLauncherError(f"not allowed to signal pid {pid}: stop it as its owner") from exc
    return wait_gone(pid, marker, timeout_s)


def _cmdline(pid: int) -> bytes:
    """The command line of ``pid``; empty if there is none (gone, zombie, exiting, not ours)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return b""  # Linux: the process is gone
        return _ps(pid, "command=")  # no /proc (macOS)
    except PermissionError:
        return b""


def _states(pid: int) -> list[str]:
    """One-letter states (R, S, D, Z, ...) of the process's threads; empty if there is none."""
    task_dir = Path(f"/proc/{pid}/task")
    if not Path("/proc/self").exists():  # no /proc (macOS): the process as a whole
        return [state[:1]] if (state := _ps(pid, "stat=").strip().decode()) else []
    states = []
    for task in task_dir.glob("*"):
        try:
            stat = (task / "stat").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue  # that thread exited just now
        states.append(stat.rsplit(b")", 1)[-1].split()[0].decode())  # "tid (comm) S ..."
    return states


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Tell whether a server could listen on ``host:port`` now (TIME_WAIT leftovers don't count).

    Raises :class:`KafkaLauncherError` for errors other than "address in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM's listener does
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise KafkaLauncherError(f"cannot bind {host}:{port}: {exc}") from exc
            return False
    return True


def _ps(pid: int, field: str) -> bytes:
    done = subprocess.run(
        ["/bin/ps", "-o", field, "-p", str(pid)], capture_output=True, check=False
    )
    return done.stdout


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_tail(path: Path, max_bytes: int = 64 * 1024) -> str:
    """The last ``max_bytes`` of a (log) file, or "" if there is none."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(path.stat().st_size - max_bytes, 0))
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def last_lines(text: str, count: int = 20) -> str:
    """The last ``count`` non-blank lines, indented with ``  | `` for quoting in an error."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(f"  | {line}" for line in lines[-count:]) or "  | (no output)"
