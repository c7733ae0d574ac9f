"""Observability: Prometheus metrics, JSON log lines, and the OpenAPI description's building blocks.

Below every app, so any of them can count, log and describe its routes without importing another.
"""
