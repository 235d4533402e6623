"""The event contract and the ways in: schemas, wire formats, registry, topics, producing."""
