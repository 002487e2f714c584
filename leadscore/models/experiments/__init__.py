"""A/B experiments of models: assignment of leads to arms and the statistics of a result."""
