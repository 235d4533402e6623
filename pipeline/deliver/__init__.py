"""Delivering activations to webhooks: ``pulse deliver``, and the receiver's ``verify``.

==========================  ==================================================
module                      what
==========================  ==================================================
``config``                  destinations YAML, validated with file:line: field errors
``signing``                 Standard Webhooks ``sign`` / ``verify``
``formats``                 request bodies: ``pulse``, ``segment``, ``slack``
``policy``                  what an HTTP answer means; the retry schedule
``book``                    per-destination bookkeeping: order, retries, commits
``records``, ``state``      topics and headers; disabled destinations
``http``, ``worker``        the sender and the delivery worker
``status``                  what ``pulse deliver status`` reports
``metrics``                 the delivery worker's Prometheus series
==========================  ==================================================

The ``pulse deliver`` commands themselves are :mod:`pipeline.cli.deliver`.

May import: :mod:`pipeline.topology` (its YAML node reader), :mod:`pipeline.contract`,
:mod:`pipeline.config`, :mod:`pipeline.errors`; not the stream runtime
(:mod:`pipeline.worker`) nor the profile API, which run in another process.

Only the receiver's side is re-exported here (this package is imported by the
CLI at start, so it stays light)::

    from pipeline.deliver import verify, WebhookVerificationError
"""

from pipeline.deliver.signing import WebhookVerificationError, sign, verify

__all__ = ["WebhookVerificationError", "sign", "verify"]
