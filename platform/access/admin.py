from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from access.auditing import AuditedAdmin
from access.models import Assignment, AuditEntry


@admin.register(Assignment)
class AssignmentAdmin(AuditedAdmin):
    list_display = ("user", "device", "site")
    list_filter = ("site",)
    search_fields = ("user__username", "device__device_id", "site")
    autocomplete_fields = ("device",)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the log is written by the services that make the changes."""

    list_display = ("at", "username", "action", "target", "before", "after")
    list_filter = ("action",)
    search_fields = ("username", "target")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class AssignmentInline(admin.TabularInline):
    """An operator's cameras and sites, edited on the user's page."""

    model = Assignment
    extra = 1
    autocomplete_fields = ("device",)


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class StrataUserAdmin(AuditedAdmin, UserAdmin):
    """Users with their camera assignments. Staff users are Strata admins and see every camera."""

    inlines = [AssignmentInline]
    list_display = ("username", "email", "is_staff", "is_active", "last_login")
