from django.apps import AppConfig


class MirrorConfig(AppConfig):
    name = "mirror"
    verbose_name = "Mirrors of upstream OCL repositories"
    default_auto_field = "django.db.models.BigAutoField"
