"""Routes of the export feature (filled in by the export resource)."""

urlpatterns: list = []
