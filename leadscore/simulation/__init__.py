"""The lead simulator: synthetic leads with a known truth, for demo traffic, tests and benchmarks."""
