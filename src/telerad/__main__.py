"""``python -m telerad`` is the ``telerad`` command."""

from telerad.cli.main import main

main()
