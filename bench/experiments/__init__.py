"""One-off measurements behind design decisions already taken (see bench/README.md).

Not part of the installed package: run them from a checkout, e.g.
``.venv/bin/python -m bench.experiments.functions --help``.
"""
