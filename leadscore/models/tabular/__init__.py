"""Tabular lead files (CRM exports): read and judge a table, turn its columns into features."""
