"""Personal data: pseudonyms, and what is kept of events (docs/privacy.md)."""
