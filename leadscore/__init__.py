"""leadscore: real-time AI lead scoring as an event-driven stream processor."""

__version__ = "0.1.0"
