"""The store over SQLAlchemy Core, shared by every relational backend (see ``store``)."""

from kairos.store.sql.store import SqlStore

__all__ = ["SqlStore"]
