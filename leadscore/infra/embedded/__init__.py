"""The embedded Kafka-compatible broker (Tansu) and Redis, run as our child processes."""
