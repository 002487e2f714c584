"""Lead features: per-lead state updated in event time, and the feature vector built from it."""
