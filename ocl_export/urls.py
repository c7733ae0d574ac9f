"""The API is mounted at the host root: OpenMRS counts the slashes of the subscription URL.

Every pattern accepts its path with and without the trailing slash (APPEND_SLASH is off).
"""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.renderers import OpenApiJsonRenderer2
from drf_spectacular.views import SpectacularJSONAPIView

from observability import metrics
from repos.views.base import JSONWhateverAccept

handler400 = "foundation.errors.json_400"
handler403 = "foundation.errors.json_403"
handler404 = "foundation.errors.json_404"
handler500 = "foundation.errors.json_500"

# The console's pages (console.apps.ConsoleConfig says why here, in the web processes only).
# django-rq's pages bring a Prometheus summary of their own, made when its module is imported:
# it stays in this process's memory, not in /metrics' files (observability.metrics says why).
with metrics.kept_in_process():
    import django_rq.contrib.prometheus  # noqa: F401
admin.autodiscover()

urlpatterns = [
    # JSON (application/json) whatever the client accepts: the path says what it is
    path(
        "openapi.json",
        SpectacularJSONAPIView.as_view(
            renderer_classes=[OpenApiJsonRenderer2], content_negotiation_class=JSONWhateverAccept
        ),
        name="openapi",
    ),
    path("", include("operations.urls")),
    # the admin console for staff (console/); django-rq's queue pages live inside it
    # (/admin/django_rq/dashboard/). Its URLs end with a slash, as the admin's own links do.
    path("admin/", admin.site.urls),
    path("admin", RedirectView.as_view(url="/admin/")),  # typed by hand; APPEND_SLASH is off
    # export routes first: ".../:version/export/" must not be read as a concept path
    path("", include("ocl_export.export_urls")),
    path("", include("repos.urls")),
    # the project wires in the mirror app by name; nothing in this package imports it
    path("", include("mirror.urls")),
]
