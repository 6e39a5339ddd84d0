"""Hostile-input tests: table-driven cases and recorded fuzz runs, one file per front door (CLI, weights, server)."""
