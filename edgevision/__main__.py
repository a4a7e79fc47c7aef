"""`python -m edgevision` runs the command line, like the `edgevision` script."""

from .cli import main

main()
