"""Measuring and choosing: `cmlite bench`, `cmlite report` and `cmlite pick`, with the reports they write."""
