"""Moving the audit log out of ``access`` keeps an existing deployment's entries."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.models import AuditEntry

BEFORE_THE_MOVE = [("audit", None), ("access", "0001_initial")]


def migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor


@pytest.mark.django_db(transaction=True)
def test_migrate_keeps_the_entries_written_while_the_log_lived_in_access():
    old = migrate(BEFORE_THE_MOVE).loader.project_state(("access", "0001_initial")).apps
    old.get_model("access", "AuditEntry").objects.create(
        username="old-admin", action="device.controls", target="device:cam-1", after={"fps": 2}
    )
    # As a deployment has it: the content type (its permissions, the admin's history) in access.
    ContentType.objects.filter(app_label="audit", model="auditentry").delete()
    legacy_type, _ = ContentType.objects.get_or_create(app_label="access", model="auditentry")
    ContentType.objects.clear_cache()

    executor = MigrationExecutor(connection)
    migrate(executor.loader.graph.leaf_nodes())

    entry = AuditEntry.objects.get(target="device:cam-1")
    assert (entry.username, entry.after) == ("old-admin", {"fps": 2})
    ContentType.objects.clear_cache()
    assert ContentType.objects.get_for_model(AuditEntry).pk == legacy_type.pk
