from django.contrib import admin

from fleet.models import Device


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = (
        "device_id",
        "name",
        "site",
        "is_active",
        "online",
        "last_seen_at",
        "desired_tier",
        "max_kbps",
    )
    list_filter = ("is_active", "online", "site")
    search_fields = ("device_id", "name", "site")
