"""The benchmark, its generated site and the demo site: tools around the crawler, not it.

``run`` crawls a generated site with N worker processes beside a minimal-loop
ceiling; ``dedup`` measures Valkey memory per fingerprint; ``sitegen`` renders
and serves the site; ``site`` runs nginx or the static server for it;
``ceiling`` and ``worker`` are the processes the benchmark times; ``demo``
serves the small site of the README's first command; ``cli`` is ``crawl bench``.
"""
