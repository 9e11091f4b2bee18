"""Alembic environment: runs on the connection Kairos hands it (see ``_migrate`` in
``kairos.store.sql.store``)."""

from __future__ import annotations

from alembic import context

from kairos.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
