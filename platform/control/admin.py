"""Per-site tier policies in the admin area (a camera's own choice is on its page)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from audit.auditing import AuditedAdmin
from control.models import SitePolicy
from control.policies import POLICIES


class SitePolicyForm(forms.ModelForm):
    policy = forms.ChoiceField(choices=[(name, name) for name in POLICIES])

    class Meta:
        model = SitePolicy
        fields = ("site", "policy")


@admin.register(SitePolicy)
class SitePolicyAdmin(AuditedAdmin):
    """The policy a site's cameras run unless a camera's admin chose one; the controller
    picks a change up at its next round (``control.services.cameras_to_decide``)."""

    form = SitePolicyForm
    list_display = ("site", "policy", "updated_at")
    search_fields = ("site",)
    audit_key = "site"
