"""Where URLs come from besides links: seed files, sitemaps, and revisits of
done URLs (``crawl recrawl``, sitemap lastmods and the adaptive schedule)."""
