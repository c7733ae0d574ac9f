from django.apps import AppConfig
from django.db.models.signals import post_delete


class OclExportConfig(AppConfig):
    name = "ocl_export"
    verbose_name = "Repository version exports"
    # A GET of an export and its status link are kept by read_cache until these rows change; the
    # used Location tokens are not watched (a redemption is never kept).
    read_cache_watch = True
    read_cache_unwatched = ("redeemedlocation",)

    def ready(self) -> None:
        # Imported here because models and jobs need the app registry ready.
        from observability.logs import JOB_ARGUMENT_FIELDS
        from repos.signals import version_created

        from .models import Export
        from .queue import JOB_FUNCTION
        from .receivers import delete_archive, export_new_version

        version_created.connect(export_new_version, dispatch_uid="ocl_export.export_new_version")
        post_delete.connect(delete_archive, sender=Export, dispatch_uid="ocl_export.delete_archive")
        JOB_ARGUMENT_FIELDS[JOB_FUNCTION] = "export_id"
