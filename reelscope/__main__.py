"""`python -m reelscope ...` runs the CLI."""

import sys

from reelscope.infra.cli import main

if __name__ == "__main__":
    sys.exit(main())
