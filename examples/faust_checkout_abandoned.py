"""A Faust app that reacts to Pulse's ``checkout_abandoned`` triggers with a cart-recovery email.

It reads ``pulse.triggers`` as typed :class:`pipeline.faust.Trigger` records and
writes one JSON message per abandoned checkout to
``pulse.examples.recovery-emails``, which your email service would consume::

    pulse worker --topology topologies/commerce.yaml          # Pulse, producing triggers
    python examples/faust_checkout_abandoned.py worker --without-web -l info

It honours ``KAFKA_BOOTSTRAP_SERVERS`` and ``PULSE_TOPIC_PREFIX`` like every
Pulse command; Faust keeps its local data in ``FAUST_DATADIR`` (default
``./.pulse/faust-example``).
"""

from __future__ import annotations

import os
from typing import Any

import faust

from pipeline.config import Settings
from pipeline.faust import Trigger, pulse_triggers

settings = Settings.from_env()
app = faust.App(
    f"{settings.app_id}-cart-recovery",
    broker=";".join(f"kafka://{host}" for host in settings.bootstrap_servers.split(",")),
    store="memory://",
    datadir=os.environ.get("FAUST_DATADIR", str(settings.home / "faust-example")),
    topic_replication_factor=settings.replication_factor,
    web_enabled=False,
)
triggers = pulse_triggers(app, settings)
emails = app.topic(
    settings.topic("examples.recovery-emails"),
    key_type=str,
    value_serializer="json",
    internal=True,  # created by maybe_declare() below
    partitions=1,
)


def recovery_email(trigger: Trigger) -> dict[str, Any]:
    """The message for the email service: who, which template, what was in the cart."""
    return {
        "person_id": trigger.person_id,
        "template": "cart-recovery",
        "cart_value": trigger.context.get("cart_value"),
        "products": trigger.context.get("products", []),
        "trigger_id": trigger.trigger_id,  # deterministic: the email service deduplicates on it
    }


@app.agent(triggers)
async def cart_recovery(stream: Any) -> None:
    await emails.maybe_declare()
    async for trigger in stream:
        if trigger.rule == "checkout_abandoned":
            await emails.send(key=trigger.person_id, value=recovery_email(trigger))


if __name__ == "__main__":
    app.main()
