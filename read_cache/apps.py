from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReadCacheConfig(AppConfig):
    name = "read_cache"
    verbose_name = "Answers kept until the database changes"

    def ready(self) -> None:
        from .triggers import install

        post_migrate.connect(install, sender=self, dispatch_uid="read_cache.install_triggers")
