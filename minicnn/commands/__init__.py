"""Handlers of the ``minicnn`` subcommands that do more than call one library function.

Each module holds one command: what it prints, the files it writes, and
nothing that the Python API does not also offer. ``minicnn/commands/cli.py`` builds
the argument parser and dispatches here.
"""
