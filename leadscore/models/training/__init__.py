"""Training: the ensemble estimator, honest model comparison, point-in-time training sets, the report."""
