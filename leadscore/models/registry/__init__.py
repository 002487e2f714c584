"""The model registry: versioned artifacts on disk with manifests, and the champion pointer."""
