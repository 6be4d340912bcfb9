"""The extraction hook checked where it is given, before anything about a crawl changes.

``crawl config set extract=mod:fn`` imports it first (a name that does not
import is refused, not stored for every worker to fail on). A worker checks
the hook stored with the crawl before it opens the crawl: a hook that does
not import on this node ends it with one line before any flag of it became a
crawl setting.
"""

from __future__ import annotations

from crawler.config import Settings
from crawler.errors import ConfigError, CrawlError


def check_hook(spec: str) -> None:
    """ConfigError (one line) if ``spec`` names no function that imports here."""
    from crawler.pages.extract import load_hook

    if spec.strip():
        load_hook(spec.strip())


async def check_stored_hook(settings: Settings) -> None:
    """The crawl's stored hook, if no flag gives one, must import on this node."""
    if settings.extract:
        return  # given here: checked already, and stored or refused like any flag
    from crawler.store.connection import connect
    from crawler.store.crawl_settings import stored
    from crawler.store.where import require_store

    require_store(settings)  # no store: say so, and start no server to find nothing
    client = await connect(settings)
    try:
        values, _ = await stored(client, settings.crawl)
    finally:
        await client.aclose()
    spec = (values or {}).get("extract")
    if not spec:
        return
    try:
        check_hook(str(spec))
    except ConfigError as exc:
        raise CrawlError(f"this crawl's stored {exc} (on this node); install it here, or "
                         "change it for every worker with `crawl config set extract=...`"
                         ) from None
