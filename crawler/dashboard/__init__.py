"""``crawl dashboard``: one web page that shows a running crawl and steers it.

- ``feed``: what the page shows, read from the frontier (crawler.status) and
  the results streams, polled once a second and shared by every viewer;
- ``auth``: the token rule and the checks every request passes;
- ``app``: the aiohttp application (the page, its JSON API, the SSE stream,
  the pause/resume/stop endpoints);
- ``static/``: the page itself (HTML, JS, CSS), shipped as package data and
  served from here: no build step, nothing fetched from elsewhere.
"""

from crawler.dashboard.app import make_app

__all__ = ["make_app"]
