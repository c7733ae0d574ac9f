"""Routes of the read API (filled in by the read API)."""

urlpatterns: list = []
