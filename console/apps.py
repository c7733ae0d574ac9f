from django.contrib.admin.apps import SimpleAdminConfig


class ConsoleConfig(SimpleAdminConfig):
    """Django's admin with the console's site (``console.access.ConsoleSite``: repository admins too).

    Its pages are found when the project's URLs load (``urls.py`` calls ``admin.autodiscover()``),
    not in every process: django-rq's admin module creates a Prometheus summary when imported,
    which would leave a metrics file behind every manage.py command and RQ worker."""

    default_site = "console.access.ConsoleSite"
