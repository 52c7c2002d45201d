"""User-facing applications: the `cmlite` CLI, visualisation, results files."""
