"""The scoring engine: tree ensembles as flat arrays, numba kernels, exact TreeSHAP, the compiled model."""
