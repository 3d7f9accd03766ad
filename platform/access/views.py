"""Sign-in with rate limiting: Django's login view, refusing while an account or address is locked."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse

from access import services


def client_ip(request: HttpRequest) -> str | None:
    """The peer address. A proxy in front must pass the real one (daphne --proxy-headers)."""
    return request.META.get("REMOTE_ADDR") or None


class RateLimitMixin:
    """For sign-in forms: refuses to even check the password while too many recent attempts
    failed, and counts each failure."""

    request: HttpRequest | None

    locked_message = "Too many failed sign-ins. Try again in %(minutes)d minute(s)."

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        ip = client_ip(self.request) if self.request else None
        self.retry_after = services.login_retry_after(username, ip)
        if self.retry_after:
            raise forms.ValidationError(
                self.locked_message,
                code="locked",
                params={"minutes": max(1, (self.retry_after + 59) // 60)},
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            services.record_login_failure(username, ip)
            raise
        services.clear_login_failures(username)
        return cleaned


class RateLimitedAuthenticationForm(RateLimitMixin, AuthenticationForm):
    """The dashboard's sign-in form."""


class RateLimitedAdminAuthenticationForm(RateLimitMixin, AdminAuthenticationForm):
    """The admin site's sign-in form: the same limits, so it is no way around them."""


class LoginView(auth_views.LoginView):
    form_class = RateLimitedAuthenticationForm

    def form_invalid(self, form: RateLimitedAuthenticationForm) -> HttpResponse:
        response = super().form_invalid(form)
        if getattr(form, "retry_after", 0):
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response
