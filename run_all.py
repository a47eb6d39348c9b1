#!/usr/bin/env python3
"""Regenerate the tables of the forward-gradient papers. Run `python run_all.py --help`."""

import sys

from benchmarks.suite.cli import main

if __name__ == "__main__":
    sys.exit(main())
