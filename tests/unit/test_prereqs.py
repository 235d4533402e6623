"""scripts/prereqs.sh: install as root, otherwise stop at once with the command to run.

Runs the script with bash on a PATH of fake tools (id, apt-get, kcat, python)
so no package is installed and being root or not is the test's choice.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "prereqs.sh"
BASH = shutil.which("bash") or "/bin/bash"


def tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    for name in ("mktemp", "cat", "rm", "chmod"):  # the script and fake apt-get need these
        real = shutil.which(name)
        assert real
        (path / name).symlink_to(real)
    return path


def as_user(bin_dir: Path, uid: int) -> None:
    tool(bin_dir, "id", f"echo {uid}")


def fake_apt(bin_dir: Path, installs: str = "kcat") -> Path:
    """An apt-get that logs its calls and, on install, puts a fake ``installs`` on PATH."""
    calls = bin_dir.parent / "apt.log"
    tool(
        bin_dir,
        "apt-get",
        f'echo "$*" >> {calls}\n'
        f'case "$1" in install) printf "#!/bin/sh\\n" > {bin_dir}/{installs}; '
        f"chmod +x {bin_dir}/{installs} ;; esac",
    )
    return calls


def run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT), *args],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_kcat_present_is_silent(bin_dir: Path) -> None:
    tool(bin_dir, "kcat", "exit 0")
    done = run(bin_dir, "kcat")
    assert (done.returncode, done.stderr) == (0, "")


def test_kcat_missing_not_root_prints_the_apt_line(bin_dir: Path) -> None:
    as_user(bin_dir, 1000)
    calls = fake_apt(bin_dir)
    done = run(bin_dir, "kcat")
    assert done.returncode == 1
    assert done.stderr == (
        "kcat is missing (make test sends events with it). Install it, then run make again:\n"
        "    sudo apt-get install -y kcat\n"
    )
    assert not calls.exists()


def test_kcat_missing_as_root_is_installed(bin_dir: Path) -> None:
    as_user(bin_dir, 0)
    calls = fake_apt(bin_dir)
    done = run(bin_dir, "kcat")
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends kcat",
    ]
    assert "installing kcat with apt-get" in done.stderr


def test_failed_install_shows_apt_output(bin_dir: Path) -> None:
    as_user(bin_dir, 0)
    tool(bin_dir, "apt-get", 'echo "E: Unable to locate package $3" >&2; exit 100')
    done = run(bin_dir, "kcat")
    assert done.returncode == 1
    assert "E: Unable to locate package" in done.stderr
    assert "apt-get could not install kcat" in done.stderr


def test_without_apt_get_names_the_package(bin_dir: Path) -> None:
    as_user(bin_dir, 501)
    done = run(bin_dir, "kcat")
    assert done.returncode == 1
    assert "(your system's package for: kcat)" in done.stderr


def fake_python(bin_dir: Path, version: str, has_ensurepip: bool) -> Path:
    """A python that answers the script's three questions: version, >= 3.11, ensurepip."""
    major, minor = version.split(".")
    ok = int(major) > 3 or (major == "3" and int(minor) >= 11)
    tool(
        bin_dir,
        "py",
        'case "$2" in\n'
        f"  *print*) echo {version} ;;\n"
        f"  *sys.exit*) exit {0 if ok else 1} ;;\n"
        f"  *ensurepip*) exit {0 if has_ensurepip else 1} ;;\n"
        "esac",
    )
    return bin_dir / "py"


def test_python_good(bin_dir: Path) -> None:
    fake_python(bin_dir, "3.11", has_ensurepip=True)
    done = run(bin_dir, "python", "py")
    assert (done.returncode, done.stderr) == (0, "")


def test_python_too_old(bin_dir: Path) -> None:
    fake_python(bin_dir, "3.9", has_ensurepip=True)
    done = run(bin_dir, "python", "py")
    assert done.returncode == 1
    assert "py is Python 3.9: Pulse needs 3.11+" in done.stderr


def test_python_missing(bin_dir: Path) -> None:
    done = run(bin_dir, "python", "python3.11")
    assert done.returncode == 1
    assert "python3.11 not found: Pulse needs Python 3.11+" in done.stderr


def test_python_without_venv_not_root(bin_dir: Path) -> None:
    as_user(bin_dir, 1000)
    fake_apt(bin_dir)
    fake_python(bin_dir, "3.11", has_ensurepip=False)
    done = run(bin_dir, "python", "py")
    assert done.returncode == 1
    assert "sudo apt-get install -y python3.11-venv" in done.stderr


def test_python_without_venv_as_root_installs_it(bin_dir: Path) -> None:
    as_user(bin_dir, 0)
    calls = fake_apt(bin_dir, installs="unused")
    fake_python(bin_dir, "3.12", has_ensurepip=False)
    done = run(bin_dir, "python", "py")
    # the fake install cannot give the fake python ensurepip: the script says so
    assert done.returncode == 1
    assert "install -y -qq --no-install-recommends python3.12-venv" in calls.read_text()
    assert "py still has no ensurepip" in done.stderr


def test_usage(bin_dir: Path) -> None:
    done = run(bin_dir, "java")
    assert done.returncode == 2
    assert "usage:" in done.stderr


def test_chromium_missing_as_root_is_installed_with_apt_get(bin_dir: Path) -> None:
    as_user(bin_dir, 0)
    calls = fake_apt(bin_dir, installs="chromium")
    done = run(bin_dir, "chromium")
    assert done.returncode == 0, done.stderr
    assert "installing chromium with apt-get" in done.stderr
    assert calls.read_text().splitlines()[-1].endswith("--no-install-recommends chromium")


def test_chromium_missing_not_root_prints_the_apt_line(bin_dir: Path) -> None:
    as_user(bin_dir, 1000)
    fake_apt(bin_dir, installs="chromium")
    done = run(bin_dir, "chromium")
    assert done.returncode == 1
    assert "    sudo apt-get install -y chromium\n" in done.stderr


def test_chromium_present_is_silent(bin_dir: Path) -> None:
    tool(bin_dir, "chromium", "exit 0")
    done = run(bin_dir, "chromium")
    assert (done.returncode, done.stderr) == (0, "")


def run_gomp(bin_dir: Path, has_gomp: bool) -> subprocess.CompletedProcess[str]:
    """``prereqs.sh gomp`` with a fake ldconfig that lists libgomp.so.1 or not (an
    install by the fake apt-get below makes it list it)."""
    listing = bin_dir.parent / "ld.so.cache"
    if has_gomp:
        listing.write_text("\tlibgomp.so.1 (libc6,x86-64) => /usr/lib/libgomp.so.1\n")
    tool(bin_dir, "ldconfig", f"cat {listing} 2>/dev/null; exit 0")
    for name in ("grep",):
        real = shutil.which(name)
        assert real
        (bin_dir / name).symlink_to(real)
    return subprocess.run(
        [BASH, str(SCRIPT), "gomp"],
        env={"PATH": str(bin_dir), "PULSE_LDCONFIG": str(bin_dir / "ldconfig")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_gomp_present_is_silent(bin_dir: Path) -> None:
    done = run_gomp(bin_dir, has_gomp=True)
    assert (done.returncode, done.stderr) == (0, "")


def test_gomp_missing_not_root_prints_the_apt_line(bin_dir: Path) -> None:
    as_user(bin_dir, 1000)
    calls = fake_apt(bin_dir)
    done = run_gomp(bin_dir, has_gomp=False)
    assert done.returncode == 1
    assert "libgomp.so.1 is missing (pulse train's LightGBM loads it)" in done.stderr
    assert "    sudo apt-get install -y libgomp1\n" in done.stderr
    assert not calls.exists()


def test_gomp_missing_as_root_is_installed(bin_dir: Path) -> None:
    as_user(bin_dir, 0)
    calls = bin_dir.parent / "apt.log"
    listing = bin_dir.parent / "ld.so.cache"
    tool(
        bin_dir,
        "apt-get",
        f'echo "$*" >> {calls}\n'
        f'case "$1" in install) echo "libgomp.so.1 => /usr/lib/libgomp.so.1" > {listing} ;; esac',
    )
    done = run_gomp(bin_dir, has_gomp=False)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends libgomp1",
    ]
