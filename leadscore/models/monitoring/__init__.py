"""Watching live models: drift statistics and windows, live performance, score trends."""
