"""`python -m bench COMMAND ...`: the toolkit's one command line (also installed as `imgcls`)."""
import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m bench"))
