"""Exports now belong to the archive (``archive.0003_export`` took over the table)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0001_exports"),
        ("archive", "0003_export"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel("Export")]),
    ]
