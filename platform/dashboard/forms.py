"""The admin's controls for one camera."""

from __future__ import annotations

from typing import Any

from django import forms

from control.policies import DEFAULT_POLICY, POLICIES
from fleet.models import Device
from protocol.payloads import MAX_FPS, MAX_TIER

TIERS = [(k, f"{k} of {MAX_TIER}") for k in range(1, MAX_TIER + 1)]


class ControlsForm(forms.Form):
    max_kbps = forms.IntegerField(
        label="Bitrate cap (kbit/s)", min_value=1, required=False, help_text="Empty: no cap."
    )
    min_tier = forms.TypedChoiceField(label="Minimum tier", choices=TIERS, coerce=int)
    max_tier = forms.TypedChoiceField(label="Maximum tier", choices=TIERS, coerce=int)
    tier_override = forms.TypedChoiceField(
        label="Tier",
        choices=[("", "Automatic (controller)"), *TIERS],
        coerce=int,
        empty_value=None,
        required=False,
    )
    fps = forms.FloatField(label="Frames per second", min_value=0, max_value=MAX_FPS)
    capture_mode = forms.ChoiceField(
        label="Capture", choices=Device._meta.get_field("capture_mode").choices
    )
    deadline_ms = forms.IntegerField(
        label="Live deadline (ms)",
        min_value=100,
        max_value=600_000,
        required=False,
        help_text="The camera trims or skips frames that would arrive later. Empty: send"
        " every frame (store and forward).",
    )
    tier_policy = forms.ChoiceField(
        label="Tier policy",
        choices=[("", "Site default"), *((name, name) for name in POLICIES)],
        required=False,
        help_text="Site default: the site's policy (admin area), else robust.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        low, high = data.get("min_tier"), data.get("max_tier")
        if low and high and low > high:
            self.add_error("min_tier", "The minimum tier is above the maximum.")
        fixed = data.get("tier_override")
        if fixed and low and high and not low <= fixed <= high:
            self.add_error("tier_override", "The fixed tier is outside the minimum and maximum.")
        return data


class ExportForm(forms.Form):
    start = forms.DateTimeField()
    end = forms.DateTimeField()
    channels = forms.TypedChoiceField(label="Quality", choices=TIERS, coerce=int)


# --- the admin area ------------------------------------------------------------------------

ROLE_CHOICES = [
    ("operator", "Operator: the cameras assigned to them"),
    ("admin", "Admin: every camera, settings and this area"),
]


class PersonForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="operator")


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class ScopeForm(forms.Form):
    """One camera or one whole site for an operator."""

    device = forms.ModelChoiceField(
        queryset=Device.objects.order_by("site", "device_id"),
        to_field_name="device_id",
        required=False,
        empty_label="—",
        label="Camera",
    )
    site = forms.CharField(max_length=128, required=False, label="or every camera of site")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if bool(data.get("device")) == bool((data.get("site") or "").strip()):
            raise forms.ValidationError("Choose a camera or a site, not both.")
        return data


class NewCameraForm(forms.Form):
    device_id = forms.CharField(
        max_length=64,
        label="Device id",
        help_text="Its MQTT login and topic level: letters, digits, '.', '_' and '-'.",
    )
    name = forms.CharField(max_length=128, required=False, help_text="What it shows.")
    site = forms.CharField(max_length=128, required=False)

    def clean_device_id(self) -> str:
        device_id = self.cleaned_data["device_id"].strip()
        if Device.objects.filter(device_id=device_id).exists():
            raise forms.ValidationError(
                f"{device_id} exists already: issue it a new login from its row instead."
            )
        return device_id


class CameraForm(forms.Form):
    """A camera's name, site and whether ingest takes its frames."""

    name = forms.CharField(max_length=128, required=False)
    site = forms.CharField(max_length=128, required=False)
    is_active = forms.BooleanField(required=False, label="Active")


class SiteForm(forms.Form):
    site = forms.CharField(max_length=128, label="Site")
    policy = forms.ChoiceField(
        label="Tier policy",
        choices=[("", f"Default ({DEFAULT_POLICY})"), *((name, name) for name in POLICIES)],
        required=False,
    )
