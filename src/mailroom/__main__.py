"""``python -m mailroom`` runs the ``mailroom`` command."""

from mailroom.cli.main import cli

cli()
