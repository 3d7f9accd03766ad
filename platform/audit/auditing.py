"""The admin site's changes go to the audit log too: who, what, before and after."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest

from audit.services import audit


def snapshot(obj: models.Model | None) -> dict[str, Any]:
    """The concrete fields of ``obj`` as JSON values; a password hash only as a fingerprint,
    so the log shows that it changed and gives nothing away."""
    if obj is None:
        return {}
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        value = getattr(obj, field.attname)
        if field.name == "password" and value:
            value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:10]
        values[field.name] = value
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def _record(
    request: HttpRequest, obj: models.Model, verb: str, before: dict, after: dict, ident: Any
) -> None:
    """Log ``obj``'s change under ``model:ident`` (taken before a delete, which clears the pk)."""
    meta = obj._meta
    target = f"{meta.model_name}:{ident}"
    audit(request.user, f"{meta.label_lower}.{verb}", target, before, after)


def _stored(obj: models.Model) -> models.Model | None:
    return type(obj)._default_manager.filter(pk=obj.pk).first() if obj.pk else None


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose saves and deletes (its inlines' too) are written to the audit log.

    ``audit_key`` names the field that identifies the object in the log (``device:cam-1``
    rather than ``device:17``, to match what the dashboard's own changes record).
    """

    audit_key = "pk"

    def save_model(self, request: HttpRequest, obj: models.Model, form: ModelForm, change: bool):
        before = snapshot(_stored(obj)) if change else {}
        super().save_model(request, obj, form, change)
        verb = "change" if change else "add"
        _record(request, obj, verb, before, snapshot(obj), getattr(obj, self.audit_key))

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        before, ident = snapshot(obj), getattr(obj, self.audit_key)
        super().delete_model(request, obj)
        _record(request, obj, "delete", before, {}, ident)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        # Keyed by the form's instance, the very object saved or deleted: a delete clears its pk.
        before = {
            id(f.instance): (f.instance.pk, snapshot(_stored(f.instance)))
            for f in formset.initial_forms
        }
        super().save_formset(request, form, formset, change)
        for obj in formset.deleted_objects:
            pk, values = before.get(id(obj), (obj.pk, {}))
            _record(request, obj, "delete", values, {}, pk)
        for obj in formset.new_objects:
            _record(request, obj, "add", {}, snapshot(obj), obj.pk)
        for obj, _ in formset.changed_objects:
            _record(
                request, obj, "change", before.get(id(obj), (None, {}))[1], snapshot(obj), obj.pk
            )
