"""pipeline.tools.localkafka.daemon on real processes: pid files, 'ours', 'gone', signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.tools.localkafka import daemon

MARKER = b"pulse-daemon-test-marker"


def sleeper() -> subprocess.Popen[bytes]:
    """A process whose command line carries MARKER, returned once it has exec'd.

    Right after fork the child still shows the parent's command line; waiting
    for its first output line means /proc already holds the new one.
    """
    code = f"import time; print('ready', flush=True); time.sleep(60)  # {MARKER.decode()}"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    return proc


def test_read_pid(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    assert daemon.read_pid(pid_file) is None
    pid_file.write_text("123\n")
    assert daemon.read_pid(pid_file) == 123
    pid_file.write_text("garbage")
    assert daemon.read_pid(pid_file) is None


def test_a_live_process_of_ours_is_running_and_not_gone() -> None:
    proc = sleeper()
    try:
        assert daemon.is_running(proc.pid, MARKER)
        assert not daemon.is_gone(proc.pid, MARKER)
    finally:
        proc.kill()
        proc.wait()


def test_another_program_on_the_pid_is_gone() -> None:
    """After a reboot the pid may belong to something else: it is not our broker."""
    assert not daemon.is_running(os.getpid(), MARKER)
    assert daemon.is_gone(os.getpid(), MARKER)


def test_a_zombie_is_gone_even_unreaped() -> None:
    proc = sleeper()
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not daemon.is_gone(proc.pid, MARKER) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.is_gone(proc.pid, MARKER)  # a zombie until the wait below reaps it
    assert not daemon.is_running(proc.pid, MARKER)
    proc.wait()
    assert daemon.is_gone(proc.pid, MARKER)


def test_signal_and_wait_returns_once_the_process_is_gone() -> None:
    proc = sleeper()
    try:
        assert daemon.signal_and_wait(proc.pid, MARKER, signal.SIGTERM, timeout_s=10)
    finally:
        proc.kill()
        proc.wait()


def test_spawn_detaches_and_logs(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    pid = daemon.spawn(["/bin/sh", "-c", "echo hello; echo oops >&2"], log, cwd=tmp_path)
    assert daemon.wait_gone(pid, b"echo hello", timeout_s=10)
    deadline = time.monotonic() + 10
    while log.read_text().count("\n") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().splitlines() == ["hello", "oops"]


def test_last_lines_quotes_the_tail() -> None:
    assert daemon.last_lines("a\n\nb\nc\n", count=2) == "  | b\n  | c"
    assert daemon.last_lines("") == "  | (no output)"
