"""Retention policies and event marks in the Django admin (audited): what ``manage.py
retention`` applies (``archive.retention``)."""

from __future__ import annotations

from django.contrib import admin

from archive.models import EventMark, RetentionPolicy
from audit.auditing import AuditedAdmin


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(AuditedAdmin):
    list_display = ("__str__", "full_days", "keep_layers", "keep_days", "budget_bytes")
    raw_id_fields = ("device",)


@admin.register(EventMark)
class EventMarkAdmin(AuditedAdmin):
    list_display = ("device", "start", "end", "label")
    list_filter = ("device",)
    raw_id_fields = ("device",)
