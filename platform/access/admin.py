from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from access.models import Assignment
from audit.auditing import AuditedAdmin


@admin.register(Assignment)
class AssignmentAdmin(AuditedAdmin):
    list_display = ("user", "device", "site")
    list_filter = ("site",)
    search_fields = ("user__username", "device__device_id", "site")
    autocomplete_fields = ("device",)


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
