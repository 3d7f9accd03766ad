from django.contrib import admin

from audit.auditing import AuditedAdmin
from fleet.models import Device


@admin.register(Device)
class DeviceAdmin(AuditedAdmin):
    """Identity and site only: limits go through the dashboard, which publishes and audits."""

    list_display = ("device_id", "name", "site", "is_active", "online", "last_seen_at")
    list_filter = ("is_active", "online", "site")
    search_fields = ("device_id", "name", "site")
    fields = ("device_id", "name", "site", "is_active", "checkin_interval_s")
    audit_key = "device_id"
