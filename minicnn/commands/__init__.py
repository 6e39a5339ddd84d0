"""The ``minicnn`` subcommands, one module each.

Each module holds one command: ``HELP`` (its one line in ``minicnn --help``),
``add_arguments(parser)`` (its flags and their help) and ``run(args) -> int``
(what it prints, the files it writes, its exit status), and nothing that the
Python API does not also offer. ``options`` holds the argparse pieces several
commands share; ``cli`` assembles the parser from the list of commands and
runs one, with the error handling they all share.
"""
