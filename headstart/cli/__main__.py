"""`python -m headstart.cli`, as the installed `headstart` command."""

from headstart.cli import main

main()
