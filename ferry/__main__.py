"""``python -m ferry`` is the ``ferry`` command."""

from ferry.cli.main import run

run()
