"""Camera assignments (operators' scope) and failed sign-ins (rate limiting)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from fleet.models import Device


class Assignment(models.Model):
    """Gives an operator one camera, or every camera of a site (present and future)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    device = models.ForeignKey(
        Device, null=True, blank=True, on_delete=models.CASCADE, related_name="assignments"
    )
    site = models.CharField(max_length=128, blank=True, help_text="Every camera of this site.")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(device__isnull=False) & models.Q(site=""))
                | (models.Q(device__isnull=True) & ~models.Q(site="")),
                name="assignment_device_xor_site",
            ),
            models.UniqueConstraint(
                fields=["user", "device"],
                condition=models.Q(device__isnull=False),
                name="assignment_unique_user_device",
            ),
            models.UniqueConstraint(
                fields=["user", "site"],
                condition=~models.Q(site=""),
                name="assignment_unique_user_site",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.device or 'site ' + self.site}"


class LoginFailure(models.Model):
    """One failed sign-in; recent ones, by username or by address, lock sign-in for a while."""

    username = models.CharField(max_length=150, db_index=True)
    ip = models.GenericIPAddressField(null=True, db_index=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.username} from {self.ip} at {self.at:%H:%M:%S}"
