"""``AuditEntry`` now belongs to the ``audit`` app, which keeps its table.

State only: the table ``access_auditentry`` and its rows stay where they are
(see ``audit/migrations/0001_initial.py``).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0001_initial"),
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEntry")],
            database_operations=[],
        ),
    ]
