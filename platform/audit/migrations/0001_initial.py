"""The audit log moves here from ``access``, table and rows included.

``access.0001_initial`` created the table ``access_auditentry``; this app takes the model
over in Django's state only and keeps that table (``Meta.db_table``), so ``migrate`` on an
existing deployment copies, renames and recreates nothing. ``access.0002`` drops the model
from ``access``'s state, also without touching the database. The content type (and with it
the admin permissions and the admin's history) is handed over too, where it exists.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _move_content_type(apps, schema_editor, source: str, dest: str) -> None:
    content_types = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if content_types.objects.using(db).filter(app_label=dest, model="auditentry").exists():
        return  # already created for the new app; the old one is merely stale
    content_types.objects.using(db).filter(app_label=source, model="auditentry").update(
        app_label=dest
    )


def content_type_to_audit(apps, schema_editor) -> None:
    _move_content_type(apps, schema_editor, "access", "audit")


def content_type_to_access(apps, schema_editor) -> None:
    _move_content_type(apps, schema_editor, "audit", "access")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("access", "0001_initial"),  # created the table this model keeps
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEntry",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "username",
                            models.CharField(
                                help_text="Kept if the user is deleted.", max_length=150
                            ),
                        ),
                        ("action", models.CharField(max_length=64)),
                        (
                            "target",
                            models.CharField(
                                help_text="What was changed, e.g. device:cam-1.", max_length=200
                            ),
                        ),
                        ("before", models.JSONField(default=dict)),
                        ("after", models.JSONField(default=dict)),
                        (
                            "user",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name_plural": "audit entries",
                        "db_table": "access_auditentry",
                        "ordering": ["-at", "-pk"],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_audit, content_type_to_access),
    ]
