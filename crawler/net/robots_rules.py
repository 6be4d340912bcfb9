"""A robots.txt reduced to what applies to one crawler: the rules it obeys, and the sitemaps.

Redis keeps this, not the body: a robots.txt may hold hundreds of groups for
other crawlers and run to 512 KiB. The reduction follows how protego picks a
group (the user-agent line that matches our product token at a word boundary
and is longest, else ``*``; every group naming that same user agent counts),
and writes those groups' rules under ``User-agent: *``, so protego reading
the reduced text decides every URL as it decides on the whole file.
"""

from __future__ import annotations

RULES_MAX_CHARS = 64 * 1024
"""A reduced robots.txt is cut (at a line) past this; what is kept is obeyed."""
_AGENT_FIELDS = ("user-agent", "useragent", "user agent")


def _score(user_agent: str, token: str) -> int:
    """How well a group's user-agent matches our token: its length, 1 for '*', 0 for none."""
    if user_agent == "*":
        return 1
    index = token.find(user_agent)
    while index != -1:
        if index == 0 or not (token[index - 1].isalnum() or token[index - 1] in "-_"):
            return len(user_agent)
        index = token.find(user_agent, index + 1)
    return 0


def rules_for_agent(body: str, token: str) -> str:
    """The robots.txt ``body`` reduced to the rules ``token`` obeys, plus Sitemap lines."""
    groups: list[tuple[list[str], list[str]]] = []
    sitemaps: list[str] = []
    agents_open = False  # consecutive user-agent lines share one group
    for raw in body.splitlines():
        line = raw.split("#", 1)[0].strip()
        field, colon, value = line.partition(":")
        if not colon:
            continue
        field, value = field.strip().lower(), value.strip()
        if field in _AGENT_FIELDS:
            if not agents_open:
                groups.append(([], []))
                agents_open = True
            groups[-1][0].append(value.lower())
        elif field == "sitemap":
            sitemaps.append(value)
        else:
            agents_open = False
            if groups:
                groups[-1][1].append(f"{field}: {value}")
    token = token.strip().lower()
    best = max((_score(ua, token), ua) for agents, _ in groups for ua in agents) \
        if groups else (0, "")
    lines = ["User-agent: *"]
    if best[0]:
        lines += [rule for agents, rules in groups if best[1] in agents for rule in rules]
    lines += [f"Sitemap: {url}" for url in sitemaps]
    text = "\n".join(lines) + "\n"
    if len(text) > RULES_MAX_CHARS:
        text = text[:text.rfind("\n", 0, RULES_MAX_CHARS) + 1]
    return text
