"""One line naming the cause and the fix, when errors of one kind dominate a worker's results.

A crawl whose seed is refused (a loopback site without ``--allow-private``)
ends at once with ``errors 1`` and nothing else: the user cannot tell a
typo from a policy. The worker counts its errors by type and keeps the
first message of each; when one type is at least half of its results, the
progress line and the final line say how many URLs it hit, an example, and
what to do (``HINTS``), including ``crawl retry --errors TYPE`` to queue
those URLs again once the cause is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HINTS: dict[str, tuple[str, str]] = {
    "blocked_address": ("refused", "pass --allow-private (loopback and private addresses; "
                        "crawl config set allow_private=true on an existing crawl) or set "
                        "allow_cidrs"),
    "dns_error": ("not resolved", "check the host names (a typo in the seeds?) and this "
                  "machine's DNS"),
    "robots_disallowed": ("disallowed by robots.txt", "the site asks not to be crawled "
                          "there; --ignore-robots only for a site you run"),
    "robots_unavailable": ("not fetched: robots.txt unreachable", "the site's robots.txt "
                           "could not be read; check the site is up"),
    "tls_error": ("failed TLS", "the server's certificate is not trusted here (self-signed "
                  "or expired?); crawl it over http:// or fix the certificate"),
    # Crawl-wide settings: once the crawl holds them, a worker's flag that differs is
    # refused, so the fix is config set (a trial followed --read-timeout into that).
    "timeout": ("timed out", "raise the timeouts (crawl config set read_timeout=N "
                "total_timeout=N), or lower max_per_host for a slow site"),
    "connect_error": ("not reached", "is the server up and the port right?"),
}
"""Error type -> (what happened to the URLs, what to do about it)."""


@dataclass
class ErrorTally:
    """A worker's errors by type, with the first message of each."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, message: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.examples.setdefault(kind, message)

    def hint(self, results: int) -> str:
        """``1 URL refused: 127.0.0.55 is a blocked address; pass --allow-private ...``,
        for the error type that is at least half of ``results``; else ''."""
        if not self.counts or results <= 0:
            return ""
        kind, count = max(self.counts.items(), key=lambda kv: kv[1])
        if kind not in HINTS or 2 * count < results:
            return ""
        what, fix = HINTS[kind]
        urls = "URL" if count == 1 else "URLs"
        return (f"{count} {urls} {what}: {self.examples[kind]}; {fix}; then "
                f"`crawl retry --errors {kind}` queues them again")
