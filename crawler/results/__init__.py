"""Results: the record each URL ends with, the streams that hold them, and getting them out.

``records`` builds a record and its JSON text; ``stream`` reads the results
streams (read-only: ``crawl export``); ``drain`` takes results out of Redis
through a consumer group once a file holds them (``crawl export --drain``);
``export`` writes them to a file.
"""

from crawler.results.records import FIELDS, dumps, make_record
from crawler.results.stream import Entry, count_results, iter_entries, iter_results

__all__ = ["FIELDS", "Entry", "count_results", "dumps", "iter_entries", "iter_results",
           "make_record"]
