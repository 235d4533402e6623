"""A webhook endpoint for ``pulse deliver``: verifies each request, drops duplicates, prints it.

    PULSE_WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --port 8080

Copy it as the start of your own receiver. What it does, in the order that matters:

1. verify the Standard Webhooks signature over the raw body (401 if it fails:
   ``pulse deliver`` dead-letters 4xx answers, so a misconfigured secret shows
   up in ``pulse dlq inspect --activations``);
2. deduplicate on ``webhook-id`` (an activation sent again after a worker
   crash carries the same id; here in memory, use your database in earnest);
3. answer 2xx quickly (do slow work after answering, or the request times out
   and is retried).

Several secrets, separated by spaces, are accepted during a key rotation.
Without ``PULSE_WEBHOOK_SECRET`` nothing is verified (for unsigned destinations).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline.deliver import WebhookVerificationError, verify

SECRETS = os.environ.get("PULSE_WEBHOOK_SECRET", "").split()
SEEN: set[str] = set()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if SECRETS:
            try:
                verify(body, dict(self.headers), SECRETS)
            except WebhookVerificationError as exc:
                self.answer(401, f"bad signature: {exc}")
                return
        msg_id = self.headers.get("webhook-id", "")
        if msg_id in SEEN:
            self.answer(200, "duplicate")
            return
        SEEN.add(msg_id)
        print(json.dumps({"path": self.path, "webhook-id": msg_id, "body": json.loads(body)}),
              flush=True)  # fmt: skip
        self.answer(204, "")

    def answer(self, status: int, text: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, format: str, *args: object) -> None:
        return  # one JSON line per delivery is enough


def main() -> int:
    parser = argparse.ArgumentParser(description="A webhook receiver for pulse deliver")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's endpoint
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    print(f"listening on {args.host}:{args.port}, verifying: {bool(SECRETS)}", file=sys.stderr)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
