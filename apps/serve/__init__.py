"""Past one device: `cmlite triton` (a Triton model repository, and the server on it)."""
