"""`python -m actions_server.cli`."""

from . import main

main()
