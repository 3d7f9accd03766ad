from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from access.views import LoginView
from strata import health, metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),  # probes: deploy/, docs/operations.md
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),  # Prometheus: strata.metrics
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("dashboard.urls")),
]
