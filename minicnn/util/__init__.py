"""Utilities every layer above the engine may use: atomic writes with the overwrite rule, progress bars."""
