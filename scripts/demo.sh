#!/usr/bin/env bash
# The demo behind `make demo`: a local Kafka, sample events, a worker, triggers.
#
# 1. start a single-node Kafka on PULSE_KAFKA_PORT (or use KAFKA_BOOTSTRAP_SERVERS)
# 2. produce examples/checkout.jsonl: one shopper abandons a checkout, one buys
# 3. run `pulse worker` in the background (log: .pulse/demo-worker.log)
# 4. produce one later event per partition so every watermark passes the deadline
# 5. print the checkout-abandonment trigger from pulse.triggers, stop the worker
set -euo pipefail
cd "$(dirname "$0")/.."
export PULSE_METRICS_PORT="${PULSE_METRICS_PORT:-0}"

pulse kafka start
# The commands below reach the broker at KAFKA_BOOTSTRAP_SERVERS (default
# 127.0.0.1:9092): point them at the local broker's port when it is not 9092.
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${PULSE_KAFKA_PORT:-9092}}"
pulse produce --file examples/checkout.jsonl

mkdir -p .pulse
pulse worker > .pulse/demo-worker.log 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null || true; wait $worker 2>/dev/null || true' EXIT

# Event time moves forward only with events: one "later" page view per
# partition (person ids chosen to cover all 4) closes the 30-minute window.
python - > .pulse/demo-clock.jsonl <<'PY'
import json
from pipeline.worker.partitioner import partition_for
seen = {}
for i in range(1000):
    key = f"demo-clock-{i}"
    seen.setdefault(partition_for(key.encode(), 4), key)
for p, key in sorted(seen.items()):
    print(json.dumps({"messageId": f"clock-{p}", "type": "page", "userId": key,
                      "timestamp": "2026-11-20T21:40:00Z"}))
PY
sleep 5
pulse produce --file .pulse/demo-clock.jsonl

echo "--- pulse.triggers (checkout abandonment) ---"
pulse tail pulse.triggers --max 1 --timeout 60
echo "--- the worker keeps running with: pulse worker   (log of this run: .pulse/demo-worker.log)"
