"""One module per resource; each exposes a ``router``."""

__all__: list[str] = []
