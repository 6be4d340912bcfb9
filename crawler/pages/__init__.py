"""What is done with a fetched page: parsing, the extraction hook, scope,
priority bands of its links and WARC capture."""
