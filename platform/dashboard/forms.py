"""The admin's controls for one camera."""

from __future__ import annotations

from typing import Any

from django import forms

from control.policies import POLICIES
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
