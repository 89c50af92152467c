"""``python -m statten_hw ...``: the ``statten-hw`` command line where the script is not on PATH."""
import sys

from statten_hw.cli import main

if __name__ == "__main__":
    sys.exit(main())
