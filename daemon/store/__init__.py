"""Persistence: SQLAlchemy Core tables, alembic migrations, and small query modules."""

from daemon.store.db import Store, StoreError

__all__ = ["Store", "StoreError"]
