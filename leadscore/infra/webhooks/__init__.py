"""Webhooks: subscription rules and signing, the Redis store, queueing, signed HTTP delivery."""
