"""Prometheus metrics: the registry, the exposition and what settled calls add to them."""
