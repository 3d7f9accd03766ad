"""What ingest refused, for inspection: counters per device and reason, and the messages."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ingest.models import DeadLetter, Rejection


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by ingest only: nobody adds or edits them here; deleting is allowed."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Rejection)
class RejectionAdmin(ReadOnlyAdmin):
    list_display = ("device_id", "reason", "count", "last_at")
    list_filter = ("reason",)
    search_fields = ("device_id",)
    ordering = ("-last_at",)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "device_id", "reason", "size", "topic")
    list_filter = ("reason",)
    search_fields = ("device_id", "topic")
    ordering = ("-received_at",)
    fields = ("received_at", "topic", "device_id", "reason", "detail", "size", "text", "hex")
    readonly_fields = fields

    @admin.display(description="payload as text")
    def text(self, obj: DeadLetter) -> str:
        return bytes(obj.payload).decode("utf-8", "backslashreplace")[:4096]

    @admin.display(description="payload as hex (first 1 KiB)")
    def hex(self, obj: DeadLetter) -> str:
        return bytes(obj.payload[:1024]).hex(" ", -4)  # groups of 4 from the start
