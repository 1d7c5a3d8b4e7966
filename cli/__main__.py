"""`python -m vidsearch.cli` runs the `vidsearch` command."""

from vidsearch.cli.main import main

main()
