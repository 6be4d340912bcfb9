"""The one compiled part: crawler.pages._simhash, optional.

Everything else is in pyproject.toml. ``optional=True``: where no C compiler
is at hand the install still succeeds, and crawler.pages.simhash computes the
same SimHash in Python (slower: see the README, Near-duplicates).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("crawler.pages._simhash", ["crawler/pages/_simhash.c"],
                             optional=True, extra_compile_args=["-O2"])])
