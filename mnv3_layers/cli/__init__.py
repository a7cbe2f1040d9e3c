"""The `mnv3` command line: one module per subcommand, `main` builds the parser and dispatches."""

from mnv3_layers.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
