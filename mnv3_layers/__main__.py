"""`python -m mnv3_layers ...` runs the `mnv3` command line (see `mnv3_layers.cli`)."""

import sys

from mnv3_layers.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
