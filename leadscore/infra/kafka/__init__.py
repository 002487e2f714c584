"""Kafka plumbing for every process: client options, topics, end offsets, publishing."""
