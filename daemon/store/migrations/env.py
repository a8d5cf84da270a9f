"""Alembic environment: migrations always run on a connection handed over by `Store.open`."""

from __future__ import annotations

from alembic import context

from daemon.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("loacam migrations run from Store.open(), not from the alembic CLI")

# render_as_batch: SQLite can only ALTER TABLE by copying it; batch mode does that.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
