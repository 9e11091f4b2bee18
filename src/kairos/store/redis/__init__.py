"""The Redis store: jobs, runs and metadata in Redis's own structures (see ``store``)."""

from kairos.store.redis.store import RedisStore

__all__ = ["RedisStore"]
