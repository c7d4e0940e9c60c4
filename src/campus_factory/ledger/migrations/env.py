"""Alembic environment: the ledger passes its open connection in ``config.attributes``."""

from alembic import context

from campus_factory.ledger.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the ledger always passes one
    raise RuntimeError("run migrations through campus_factory.ledger.Ledger.open()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
