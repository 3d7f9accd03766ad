"""Exports move from the dashboard app to the archive: the table is kept (state only), then
renamed to the archive's name."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0002_layer_partitions"),
        ("dashboard", "0001_exports"),
        ("fleet", "0002_controls_health_reported"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Export",
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
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("start", models.DateTimeField()),
                        ("end", models.DateTimeField()),
                        (
                            "channels",
                            models.PositiveSmallIntegerField(
                                help_text="k: frames with fewer layers use all."
                            ),
                        ),
                        (
                            "fps",
                            models.FloatField(default=5.0, help_text="Playback rate of the video."),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("done", "Done"),
                                    ("failed", "Failed"),
                                ],
                                default="queued",
                                max_length=8,
                            ),
                        ),
                        ("progress", models.FloatField(default=0.0)),
                        ("frames", models.PositiveIntegerField(default=0)),
                        ("error", models.TextField(blank=True)),
                        ("video", models.BinaryField(null=True)),
                        ("size", models.PositiveBigIntegerField(default=0)),
                        (
                            "created_by",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "device",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="exports",
                                to="fleet.device",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["-created_at"],
                        "db_table": "dashboard_export",
                    },
                ),
            ]
        ),
        migrations.AlterModelTable(name="export", table=None),
    ]
