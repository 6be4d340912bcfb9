"""What a worker tells its metrics, and the no-op it uses without ``--metrics-port``.

Prometheus (``crawler.observe.metrics``) is imported only by a worker that
serves ``/metrics``: every other worker process starts without it.
"""

from __future__ import annotations

from typing import Protocol


class FetchMeter(Protocol):
    """Counts a worker reports as it goes (``crawler.observe.metrics.WorkerMetrics``)."""

    def fetched(self, status: int, elapsed: float, size: int) -> None: ...

    def failed(self, kind: str, elapsed: float, status: int | None) -> None: ...

    def claimed(self, leases: int) -> None: ...

    def exposition(self) -> bytes: ...


class NoMeter:
    """A worker without ``--metrics-port``: nothing to count, nothing to serve."""

    def fetched(self, status: int, elapsed: float, size: int) -> None:
        pass

    def failed(self, kind: str, elapsed: float, status: int | None) -> None:
        pass

    def claimed(self, leases: int) -> None:
        pass

    def exposition(self) -> bytes:
        return b""
