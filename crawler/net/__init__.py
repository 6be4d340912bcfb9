"""Talking to the web: the HTTP fetcher, the SSRF guard and robots.txt.

Sits above ``frontier`` (robots verdicts are stored by a frontier script and
fetched in a host's politeness slot) and below ``pages``.
"""
