"""``/mirror/subscriptions/`` and ``/mirror/subscriptions/:id/``, with or without the slash."""

from django.urls import re_path

from .views import SubscriptionDetailView, SubscriptionListView

urlpatterns = [
    re_path(r"^mirror/subscriptions/?$", SubscriptionListView.as_view(), name="subscription-list"),
    re_path(r"^mirror/subscriptions/(?P<pk>[0-9]+)/?$", SubscriptionDetailView.as_view(), name="subscription-detail"),
]
