"""Keys and the way from pseudonyms back to lead ids (docs/privacy.md)."""
