"""Audit Log page: newest first, filters by action, user, outcome and text."""

from __future__ import annotations

from backup_core import audit
from tests.pages.conftest import frame_with, run_page

PAGE = "pages/5_Audit_Log.py"


def _seed(root):
    audit.record(root, user="ann", action="backup", backup_id="20261101T000000Z")
    audit.record(root, user="bob", action="login", outcome="error", reason="wrong password")
    audit.record(root, user="ann", action="restore", backup_id="20261101T000000Z", mode="merge")
    audit.record(root, user="ann", action="delete", backup_id="20261102T000000Z")


def test_newest_first(page_env, make_app, root):
    _seed(root)
    at = run_page(make_app("viewer"), PAGE)
    assert not at.exception
    table = frame_with(at, "action")
    assert table["action"].tolist() == ["delete", "restore", "login", "backup"]
    assert "wrong password" in table["details"].tolist()[2]


def test_filters(page_env, make_app, root):
    _seed(root)
    at = run_page(make_app("admin"), PAGE)
    at.selectbox(key="audit_action").set_value("backup")
    at.button(key="audit_submit").click().run()
    assert frame_with(at, "action")["action"].tolist() == ["backup"]
    at.selectbox(key="audit_action").set_value("")
    at.text_input(key="audit_user").input("ann")
    at.button(key="audit_submit").click().run()
    assert frame_with(at, "action")["action"].tolist() == ["delete", "restore", "backup"]
    at.text_input(key="audit_user").input("")
    at.selectbox(key="audit_outcome").set_value("error")
    at.button(key="audit_submit").click().run()
    assert frame_with(at, "user")["user"].tolist() == ["bob"]
    at.selectbox(key="audit_outcome").set_value("")
    at.text_input(key="audit_text").input("MERGE")
    at.button(key="audit_submit").click().run()
    assert frame_with(at, "action")["action"].tolist() == ["restore"]
    at.text_input(key="audit_text").input("nothing like this")
    at.button(key="audit_submit").click().run()
    assert not at.exception
    assert any("No audit entry matches" in i.value for i in at.info)


def test_empty_log(page_env, make_app):
    at = run_page(make_app("admin"), PAGE)
    assert not at.exception
    assert any("empty" in i.value for i in at.info)


def test_shows_where_the_chain_breaks(page_env, make_app, root):
    _seed(root)
    path = audit.audit_path(root)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"wrong password", b"right password")
    path.write_bytes(b"".join(lines))
    at = run_page(make_app("viewer"), PAGE)
    assert not at.exception
    assert any("tampered" in e.value and "line 2" in e.value for e in at.error)
    outcome = dict(zip(frame_with(at, "action")["action"], frame_with(at, "action")["outcome"]))
    assert outcome["login"].endswith("(chain broken)") and outcome["backup"] == "ok"


def test_show_at_most_is_honoured(page_env, make_app, root):
    for i in range(30):
        audit.record(root, user="ann", action="backup", n=i)
    at = run_page(make_app("viewer"), PAGE)
    at.number_input(key="audit_limit").set_value(12)
    at.button(key="audit_submit").click().run()
    assert len(frame_with(at, "action")) == 12
    assert any("12 entries" in c.value for c in at.caption)


def test_details_are_readable(page_env, make_app, root):
    audit.record(root, user="ann", action="restore", counts={"Equipment": {"inserted": 3}}, mode="merge")
    at = run_page(make_app("viewer"), PAGE)
    details = frame_with(at, "details")["details"].tolist()[0]
    assert "mode: merge" in details and "{" not in details.split("counts:")[0]
