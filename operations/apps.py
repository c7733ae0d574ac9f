from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Health, readiness and metrics for operators: the top of the import graph, nothing imports it."""

    name = "operations"
    verbose_name = "Operations"
