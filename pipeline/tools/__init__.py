"""Developer and operator tools: the local broker, synthetic data, replay, tail, the DLQ."""
