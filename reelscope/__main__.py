"""`python -m reelscope ...` runs the CLI."""

from reelscope.infra.cli import main

if __name__ == "__main__":
    main()
