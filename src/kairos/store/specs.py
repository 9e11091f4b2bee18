"""``SpecCache``: parsed job specs by their stored text, for the claims of the stores that read
specs as text (SQL, Redis)."""

from __future__ import annotations

from collections import OrderedDict

from kairos.models import JobSpec

__all__ = ["SpecCache"]


class SpecCache:
    """Specs are immutable: a job that fires every second is claimed every second, and jobs made
    from one template share one parse. Only claims fill it, so browsing a million jobs does not
    grow memory; past ``size`` specs the oldest go."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._specs: OrderedDict[str, JobSpec] = OrderedDict()

    def parse(self, text: str) -> JobSpec:
        """``JobSpec.from_stored(text)``, parsed once."""
        spec = self._specs.get(text)
        if spec is None:
            spec = JobSpec.from_stored(text)
            self._specs[text] = spec
            if len(self._specs) > self._size:
                self._specs.popitem(last=False)
        return spec
