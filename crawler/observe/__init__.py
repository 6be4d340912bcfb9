"""Looking at and steering a crawl: status, the rate history, Prometheus
metrics, pause/resume/stop, and the list of crawls on a server.

Read-only views over every package below; nothing below imports them.
"""
