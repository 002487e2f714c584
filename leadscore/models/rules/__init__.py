"""The rules prior: a transparent points table that scores leads before a model has labels."""
