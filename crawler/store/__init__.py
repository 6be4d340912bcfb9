"""Where a crawl lives: the Redis connection, every key name, the embedded Valkey,
a crawl's fixed layout and its stored crawl-wide settings.

Imports only ``crawler.config`` and the root helpers: everything above reaches
Redis through these modules.
"""
