from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.auditing import AuditedAdmin
from fleet.credentials import issue_credentials, revoke_credentials
from fleet.models import Device


@admin.register(Device)
class DeviceAdmin(AuditedAdmin):
    """Identity and site only: limits go through the dashboard, which publishes and audits.
    MQTT logins are issued and revoked here (as ``manage.py provision``/``revoke`` do)."""

    list_display = (
        "device_id",
        "name",
        "site",
        "is_active",
        "online",
        "mqtt_login",
        "last_seen_at",
    )
    list_filter = ("is_active", "online", "site")
    search_fields = ("device_id", "name", "site")
    fields = ("device_id", "name", "site", "is_active", "checkin_interval_s")
    audit_key = "device_id"
    actions = ("issue_mqtt_login", "revoke_mqtt_login")

    @admin.display(description="MQTT login")
    def mqtt_login(self, device: Device) -> str:
        credential = getattr(device, "credential", None)
        if credential is None:
            return "none"
        return "revoked" if credential.revoked_at else "active"

    @admin.action(description="Issue a new MQTT login (shown once)")
    def issue_mqtt_login(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        for device in queryset:
            try:
                issued = issue_credentials(device.device_id, by=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{device}: {'; '.join(exc.messages)}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"Flash this into the camera now, it is not shown again: {issued.to_json()}",
                messages.WARNING,
            )

    @admin.action(description="Revoke the MQTT login")
    def revoke_mqtt_login(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        revoked = [
            d.device_id for d in queryset if revoke_credentials(d.device_id, by=request.user)
        ]
        self.message_user(request, f"Revoked: {', '.join(revoked) or 'none had a login'}.")
