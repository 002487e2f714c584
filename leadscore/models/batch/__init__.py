"""The worker's batch logic with no stream engine: records in, states, score events and dead letters out."""
