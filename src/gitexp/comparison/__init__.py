"""Comparing many runs: seed groups, statistics over them, `compare` and `ablate`."""
