"""``python -m lcmap`` runs the command line."""

from lcmap.cli import main

main()
