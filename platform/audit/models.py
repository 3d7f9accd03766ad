"""The audit log's one table."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """Who changed what, when, with the values before and after."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, help_text="Kept if the user is deleted.")
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, help_text="What was changed, e.g. device:cam-1.")
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)

    class Meta:
        # The table the log was written to while it lived in ``access``: deployments keep
        # their history without any data being copied (see migrations/0001_initial.py).
        db_table = "access_auditentry"
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.action} {self.target}"
