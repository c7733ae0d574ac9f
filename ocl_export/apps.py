from django.apps import AppConfig


class OclExportConfig(AppConfig):
    name = "ocl_export"
    verbose_name = "Repository version exports"
