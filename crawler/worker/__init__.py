"""The worker: claim a batch, fetch, parse, complete; until the crawl is done.

``loop`` runs one process's share of a crawl; ``lease`` decides what happens to
one claimed URL; ``backoff`` holds the retry timing; ``watch`` notices a loop
that stopped making progress; ``signals`` wires SIGINT/SIGTERM/SIGUSR1.
"""

from crawler.worker.backoff import backoff_delay, retry_after
from crawler.worker.loop import Worker, worker_id
from crawler.worker.signals import install_signal_handlers

__all__ = ["Worker", "backoff_delay", "install_signal_handlers", "retry_after", "worker_id"]
