"""cookies = true on the worker: a lease's jar into its request, a response's cookies into Redis.

The jar came with the claim (``Lease.cookies``); what a response sets goes
back with the lease's completion or retry (``Frontier.cookies_call``), in the
same round trip. Neither a cookie's name nor its value is ever logged or put
in a record: a record says only how many cookies its request carried
(``cookies_sent``).
"""

from __future__ import annotations

from typing import Any

from crawler.frontier import Lease
from crawler.net.cookies import (
    MAX_COOKIES,
    MAX_JAR_BYTES,
    cookie_header,
    parse_set_cookies,
    read_jar,
)
from crawler.net.fetch import Response
from crawler.worker.watch import InFlight


def request_headers(item: InFlight, headers: dict[str, str] | None) -> dict[str, str] | None:
    """``headers`` with the Cookie header the lease's jar has for its URL (counted on ``item``)."""
    lease: Lease = item.lease
    header, count = cookie_header(read_jar(lease.cookies), lease.url)
    item.cookies_sent = count
    if header is None:
        return headers
    return {**(headers or {}), "Cookie": header}


def jar_updates(resp: Response) -> list[Any]:
    """What ``resp`` set, as ``Frontier.cookies_call`` takes it ([] if nothing)."""
    lines = [value.decode("latin-1") for name, value in resp.raw_headers
             if name.lower() == b"set-cookie"]
    if not lines:
        return []
    updates = parse_set_cookies(lines, resp.final_url)
    if not updates:
        return []
    return [MAX_COOKIES, MAX_JAR_BYTES, *(arg for u in updates for arg in u.script_args())]
