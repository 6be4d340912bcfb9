"""Who may see and steer the crawl (the dashboard) or scrape it (/metrics): the token rule.

- Bound to loopback, the dashboard needs no token (one may still be given).
  Bound anywhere else it always has one: ``--token``, or one generated at
  start and printed with the URL.
- With a token, every answer (the page, its files, the API, the stream) is
  401 without it. The first page load carries it as ``?token=``; the answer
  sets it as a cookie (HttpOnly, SameSite=Strict) and redirects to the same
  path without it, so it leaves the address bar and the history. Scripts may
  send it as ``Authorization: Bearer <token>`` instead. Compared in constant time.
- Without a token the page is served only under a loopback host name (a
  web page elsewhere cannot reach it by DNS rebinding), and a POST must carry
  the header ``X-Crawl-Dashboard`` (a cross-site form cannot; a cross-site
  script would need a CORS preflight, which is never granted).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

COOKIE = "crawl_dashboard_token"
ACTION_HEADER = "X-Crawl-Dashboard"


def is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_for(host: str, given: str | None) -> tuple[str | None, bool]:
    """The token in force for a dashboard bound to ``host``, and whether it was generated."""
    if given:
        return given, False
    if is_loopback(host):
        return None, False
    return secrets.token_urlsafe(24), True


def token_matches(candidate: str | None, token: str) -> bool:
    return candidate is not None and hmac.compare_digest(candidate.encode(), token.encode())


def bearer_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def host_name(request: web.Request) -> str:
    host = request.headers.get("Host", "")
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def guard(token: str | None) -> Middleware:
    """The middleware enforcing the rules above."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None:
            if not is_loopback(host_name(request).lower()):
                raise web.HTTPForbidden(text="this dashboard answers only on a loopback host "
                                             "name (start it with --token to bind elsewhere)")
        elif token_matches(request.query.get("token"), token) and request.method == "GET":
            # First load: keep the token as a cookie, drop it from the URL.
            query = {k: v for k, v in request.query.items() if k != "token"}
            target = request.rel_url.with_query(query)
            response = web.HTTPSeeOther(location=str(target))
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict",
                                secure=request.secure, path="/")
            raise response
        elif not (token_matches(request.cookies.get(COOKIE), token)
                  or token_matches(bearer_token(request), token)):
            raise web.HTTPUnauthorized(
                text="token required: open the URL `crawl dashboard` printed "
                     "(…/?token=…), or send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"})
        if request.method == "POST" and ACTION_HEADER not in request.headers:
            raise web.HTTPForbidden(text=f"a POST needs the {ACTION_HEADER} header")
        return await handler(request)

    return check
