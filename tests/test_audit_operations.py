"""The audit log read as operations: started + outcome paired into one row, every action listed."""

from __future__ import annotations

from backup_core import audit
from backup_core.audit_operations import actions, operations
from backup_core.operation import operation
from backup_core.store import LocalStore


def test_an_operation_is_one_row_with_its_outcome_and_both_entries(root):
    store = LocalStore(root)
    with operation(store, "backup", user="ann", details={"database": "d"}) as op:
        op.note(backup_id="20261124T000000Z")
    audit.record(root, user="bob", action="login", outcome="error", reason="wrong password")
    rows = operations(store.audit_log().read(None))
    assert [(r.action, r.user, r.outcome) for r in rows] == [("login", "bob", "error"), ("backup", "ann", "ok")]
    backup = rows[1]
    assert [e["outcome"] for e in backup.entries] == ["ok", "started"]
    assert backup.started_at and backup.details["backup_id"] == "20261124T000000Z"
    assert backup.details["database"] == "d" and "hash" not in backup.details and "op" not in backup.details
    assert backup.seqs == [2, 1] and backup.seq == 2


def test_an_operation_whose_process_died_is_interrupted(root):
    import socket

    audit.record(root, user="ann", action="restore", outcome="started", op="dead-op", pid=999_999_999,
                 host=socket.gethostname())
    (row,) = operations(audit.read(root, None))
    assert (row.action, row.outcome) == ("restore", "interrupted")


def test_actions_are_every_action_the_log_holds(root):
    for action in ("backup", "copy", "undo", "archive", "drill", "backup"):
        audit.record(root, user="ann", action=action)
    assert actions(LocalStore(root).audit_log()) == ["archive", "backup", "copy", "drill", "undo"]
