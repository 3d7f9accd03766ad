"""Sign-in with rate limiting: Django's login view, refusing while an account is locked from
this address or the address is locked (``access.services``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from access import services


def client_ip(request: HttpRequest) -> str | None:
    """The peer address. A proxy in front must pass the real one (daphne --proxy-headers)."""
    return request.META.get("REMOTE_ADDR") or None


class RateLimitMixin:
    """For sign-in forms: refuses to even check the password while this account is locked
    from this address, or this address is locked; counts each failure."""

    request: HttpRequest | None

    locked_messages = {
        "account": "Too many failed sign-ins to this account from your address.",
        "address": "Too many failed sign-ins from your address.",
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        ip = client_ip(self.request) if self.request else None
        lockout = services.login_lockout(username, ip)
        self.retry_after = lockout.retry_after() if lockout else 0
        if lockout:
            minutes = max(1, (self.retry_after + 59) // 60)
            raise forms.ValidationError(
                "%(why)s Try again at %(until)s (in %(minutes)d minute(s)), "
                "or ask an admin to unlock it (manage.py unlock).",
                code="locked",
                params={
                    "why": self.locked_messages[lockout.scope],
                    "until": timezone.localtime(lockout.until).strftime("%H:%M %Z"),
                    "minutes": minutes,
                },
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            services.record_login_failure(username, ip)
            raise
        services.clear_login_failures(username, ip)
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
