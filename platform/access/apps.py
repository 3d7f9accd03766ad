from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access"

    def ready(self) -> None:
        from django.contrib import admin

        from access.views import RateLimitedAdminAuthenticationForm

        admin.site.login_form = RateLimitedAdminAuthenticationForm
