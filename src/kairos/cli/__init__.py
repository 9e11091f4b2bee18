"""The ``kairos`` command: ``serve`` (``main``), user and key administration on the database
(``accounts``), and a client for a running server (``client``)."""

from kairos.cli.main import app, main

__all__ = ["app", "main"]
