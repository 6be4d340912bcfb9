"""Settings: defaults < config file (TOML) < environment ``CRAWL_*`` < command-line flags.

``settings`` is the typed model (types, bounds, sections, crawl or node
scope); ``host_tables`` the per-host tables in it (politeness, rendering);
``expectations`` what each setting must be, for messages; ``loading``
layers the sources and says where a bad value came from.
``config/default.toml`` documents every key with its default; a test keeps
it equal to the model.
"""

from crawler.config.host_tables import HostPolicy
from crawler.config.loading import load_settings, load_with_origins
from crawler.config.settings import Settings

__all__ = ["HostPolicy", "Settings", "load_settings", "load_with_origins"]
