"""URL shapes for ``crawl bench memory --shape``: frontiers that look like real crawls.

Each shape is generated from a seeded random source (the same URLs every
run), from the properties issue 24 lists, not copied from one site:

- ``news``: ``/2020/01/02/slug-words-17.html``, a directory a day, a few to a
  few dozen articles a day;
- ``own-directory``: ``/articles/2026/0042/article-0000042.html``, every URL
  of a host in a directory of its own;
- ``shop``: ``/product/100042-slug.html``, one directory;
- ``query``: ``/item?id=42&ref=tracking-123456&sort=price``, one path, the
  URL told apart by its query;
- ``wiki``: ``/wiki/Some_Title_42``, one directory;
- ``forum``: ``/forum/viewtopic.php?t=123456&start=30``, a few scripts told
  apart by their queries (of two or three names);
- ``paged``: ``/stories/slug-words-1042.html``, half of them with a query
  (``?page=3``, ``?lang=de&ref=home``): a file of its own with a query;
- ``broad``: a few big hosts (a fifth of the URLs) and most hosts with 1-3
  URLs, each host's URLs of one of the shapes above.

The URLs come shuffled, as a crawl discovers them: a window of ``crawl seed``
holds a few of a host's URLs, not all of them in a row.
"""

from __future__ import annotations

import random
from collections.abc import Callable

WORDS = ("market", "river", "council", "energy", "school", "weather", "garden", "travel",
         "budget", "health", "station", "music", "league", "bridge", "winter", "report",
         "science", "housing", "festival", "harbour", "election", "museum", "forest",
         "traffic", "library", "airport", "summer", "review", "kitchen", "digital")
TLDS = ("com", "org", "net", "de", "co.uk", "fr", "io", "info")


def host_name(rng: random.Random, i: int) -> str:
    """A host name of usual length (13-35 characters), unique by ``i``."""
    words = "-".join(rng.sample(WORDS, rng.randint(1, 2)))
    return f"{rng.choice(('www.', '', 'blog.', 'shop.'))}{words}{i}.{rng.choice(TLDS)}"


def _slug(rng: random.Random, low: int, high: int) -> str:
    return "-".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


PathMaker = Callable[[random.Random, int], list[str]]
"""(random source, count) -> that many distinct paths (with query) of one host."""


def news_paths(rng: random.Random, count: int) -> list[str]:
    out: list[str] = []
    day = rng.randint(0, 3000)
    while len(out) < count:
        y, rest = divmod(day, 365)
        m, d = rest // 31 + 1, rest % 28 + 1
        for _ in range(rng.randint(3, 30)):
            out.append(f"/{2010 + y}/{m:02d}/{d:02d}/{_slug(rng, 2, 5)}-{len(out)}.html")
        day += 1
    return out[:count]


def own_directory_paths(rng: random.Random, count: int) -> list[str]:
    section, item = rng.choice((("articles", "article"), ("news", "story"), ("posts", "post")))
    start = rng.randint(0, 9_000_000)
    return [f"/{section}/{2000 + (start + i) // 10_000 % 27}/{(start + i) % 10_000:04d}/"
            f"{item}-{start + i:07d}.html" for i in range(count)]


def shop_paths(rng: random.Random, count: int) -> list[str]:
    ids = [rng.randint(100_000, 900_000)]
    while len(ids) < count:
        ids.append(ids[-1] + rng.randint(1, 7))
    return [f"/product/{n}-{_slug(rng, 1, 4)}.html" for n in ids[:count]]


def query_paths(rng: random.Random, count: int) -> list[str]:
    start = rng.randint(0, 1_000_000)
    return [f"/item?id={start + i}&ref=tracking-{rng.randint(0, 999_999):06d}"
            f"&sort={rng.choice(('price', 'name', 'date', 'rating'))}" for i in range(count)]


def wiki_paths(rng: random.Random, count: int) -> list[str]:
    return [f"/wiki/{_slug(rng, 1, 3).replace('-', '_').title()}_{i}" for i in range(count)]


def forum_paths(rng: random.Random, count: int) -> list[str]:
    out: dict[str, None] = {}
    while len(out) < count:
        kind = rng.random()
        if kind < 0.7:
            path = (f"/forum/viewtopic.php?t={rng.randint(1000, 999_999)}"
                    f"&start={rng.choice((0, 0, 15, 30, 45))}")
        elif kind < 0.9:
            path = f"/forum/viewforum.php?f={rng.randint(1, 80)}&start={rng.randint(0, 40) * 25}"
        else:
            path = f"/forum/memberlist.php?mode=viewprofile&u={rng.randint(2, 99_999)}"
        out[path] = None
    return list(out)


def paged_paths(rng: random.Random, count: int) -> list[str]:
    section = rng.choice(("stories", "blog", "guides"))
    start = rng.randint(0, 90_000)
    out = []
    for i in range(count):
        path = f"/{section}/{_slug(rng, 2, 4)}-{start + i}.html"
        kind = rng.random()
        if kind < 0.3:
            path += f"?page={rng.randint(2, 6)}"
        elif kind < 0.5:
            path += f"?lang={rng.choice(('de', 'fr', 'es'))}&ref=home"
        out.append(path)
    return out


PATHS: dict[str, PathMaker] = {"news": news_paths, "own-directory": own_directory_paths,
                               "shop": shop_paths, "query": query_paths, "wiki": wiki_paths,
                               "forum": forum_paths, "paged": paged_paths}
SHAPES = (*PATHS, "broad")
BROAD_KINDS = ("news", "own-directory", "shop", "query", "wiki")
"""The paths a broad crawl's hosts have: the first five shapes (its figures compare
with those measured before forum and paged were added)."""


def host_sizes(urls: int, per_host: int, broad: bool, rng: random.Random) -> list[int]:
    """How many URLs each host gets: ``per_host`` each, or broad: 1-3 URLs most hosts,
    with a fifth of the URLs on a few big hosts (a hundredth of the URLs each)."""
    if not broad:
        return [per_host] * (urls // per_host) + ([urls % per_host] if urls % per_host else [])
    big = urls // 5
    sizes = [urls // 100] * (big // max(1, urls // 100))
    left = urls - sum(sizes)
    while left > 0:
        sizes.append(min(left, rng.randint(1, 3)))
        left -= sizes[-1]
    return sizes


def shape_urls(shape: str, urls: int, per_host: int = 100, seed: int = 24) -> list[str]:
    """``urls`` distinct canonical URLs of ``shape``, shuffled (the same list every run)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    rng = random.Random(f"{shape}:{seed}")
    out: list[str] = []
    kinds = [PATHS[kind] for kind in BROAD_KINDS]
    for i, size in enumerate(host_sizes(urls, per_host, shape == "broad", rng)):
        make = rng.choice(kinds) if shape == "broad" else PATHS[shape]
        origin = f"{rng.choice(('https', 'https', 'https', 'http'))}://{host_name(rng, i)}"
        out += [origin + path for path in make(rng, size)]
    rng.shuffle(out)
    return out
