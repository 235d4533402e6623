"""``pulse kafka start|stop|status``: a local single-node Kafka broker without Docker."""
