"""Clean-up: past the retention period, never the newest, audited; dry runs change nothing."""

from __future__ import annotations

import json

import pytest
import shutil
from datetime import datetime, timedelta, timezone

from backup_core import audit
from backup_core.backup import BackupOptions, create_backup
from backup_core.retention import cleanup
from backup_core.store import MANIFEST, backup_id_for, day_for, manifest_hash


def _aged(store, backup_id: str, days: float) -> str:
    info = store.get(backup_id)
    when = datetime.now(timezone.utc) - timedelta(days=days)
    new_id = backup_id_for(when)
    data = dict(info.manifest.data, backup_id=new_id, day_of_week=day_for(when),
                created_at=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    data["manifest_sha256"] = manifest_hash(data)
    target = store.root / day_for(when) / new_id
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(store.folder(backup_id), target)
    (target / MANIFEST).write_text(json.dumps(data))
    return new_id


def test_deletes_only_what_is_past_retention_and_never_the_newest(db, store):
    db["a"].insert_one({"x": 1})
    old = [_aged(store, create_backup(db, store, BackupOptions(user="t")).backup_id, d) for d in (10, 9, 8)]
    recent = create_backup(db, store, BackupOptions(user="t")).backup_id
    dry = cleanup(store, timedelta(days=7), dry_run=True, user="t")
    assert sorted(dry.deleted) == sorted(old) and len(store.list_backups()) == 4
    res = cleanup(store, timedelta(days=7), user="t")
    assert sorted(res.deleted) == sorted(old) and [b.backup_id for b in store.list_backups()] == [recent]
    last = audit.read(store.root, 1)[0]
    assert last["action"] == "cleanup" and last["outcome"] == "ok" and sorted(last["deleted"]) == sorted(old)


def test_an_old_newest_backup_is_kept(db, store):
    db["a"].insert_one({"x": 1})
    only = _aged(store, create_backup(db, store, BackupOptions(user="t")).backup_id, 30)
    assert cleanup(store, timedelta(days=7), user="t").deleted == []
    assert [b.backup_id for b in store.list_backups()] == [only]



def test_a_tampered_old_backup_is_left_alone_and_named(db, store):
    db["a"].insert_one({"x": 1})
    old = _aged(store, create_backup(db, store, BackupOptions(user="t")).backup_id, 30)
    create_backup(db, store, BackupOptions(user="t"))
    manifest = store.folder(old) / MANIFEST
    manifest.write_text(manifest.read_text().replace('"count": 1', '"count": 2'))  # hash no longer matches
    res = cleanup(store, timedelta(days=7), user="t")
    assert res.deleted == [] and len(res.unreadable) == 1 and old in res.unreadable[0]
    assert manifest.exists() and "left alone: 1 folder(s)" in res.to_text()
    assert res.to_json()["unreadable"] == res.unreadable


# ---------------------------------------------------------------- tiered policy (restic's forget)

from backup_core.retention import RetentionPolicy, apply_policy  # noqa: E402
from backup_core.errors import UsageError  # noqa: E402


class _B:
    """Just what apply_policy reads of a backup."""

    def __init__(self, when: datetime, trigger: str = "scheduled") -> None:
        self.created = when
        self.created_at = when.isoformat()
        self.backup_id = when.strftime("%Y%m%dT%H%M%SZ")
        self.trigger = trigger
        self.total_bytes = 100
        self.collections = {}
        self.day = "monday"
        self.stored_manifest = b""


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def _hourly(hours: int) -> list[_B]:
    return [_B(NOW - timedelta(hours=h, minutes=5)) for h in range(hours)]


def _kept(decisions) -> dict[str, list[str]]:
    return {d.backup_id: d.reasons for d in decisions if d.keep}


def test_keep_last_and_the_newest():
    backups = _hourly(10)
    kept = _kept(apply_policy(backups, RetentionPolicy(keep_last=3), NOW))
    assert list(kept) == [b.backup_id for b in backups[:3]]
    assert kept[backups[0].backup_id] == ["newest backup", "last 3"]


def test_hourly_daily_weekly_monthly_tiers_keep_the_newest_of_each_period():
    backups = _hourly(24 * 70)  # ten weeks of hourly backups
    decisions = apply_policy(backups, RetentionPolicy(keep_hourly=6, keep_daily=7, keep_weekly=4,
                                                      keep_monthly=3), NOW)
    kept = _kept(decisions)
    hourly = [b for b, r in kept.items() if any(x.startswith("hourly") for x in r)]
    daily = [b for b, r in kept.items() if any(x.startswith("daily") for x in r)]
    weekly = [b for b, r in kept.items() if any(x.startswith("weekly") for x in r)]
    monthly = [b for b, r in kept.items() if any(x.startswith("monthly") for x in r)]
    assert (len(hourly), len(daily), len(weekly), len(monthly)) == (6, 7, 4, 3)
    # the daily one of yesterday is yesterday's last backup (23:55)
    yesterday = next(r for b, r in kept.items() if "daily 2026-11-22" in r)
    assert yesterday
    assert any(b.endswith("235500Z") or b.startswith("20261122T23") for b, r in kept.items()
               if "daily 2026-11-22" in r)
    assert len(kept) < 6 + 7 + 4 + 3 + 1  # periods overlap: one backup may serve several rules
    assert sum(1 for d in decisions if not d.keep) == len(backups) - len(kept)


def test_keep_within_is_relative_to_the_newest_backup_and_older_than_to_now():
    old = [_B(NOW - timedelta(days=30, hours=h)) for h in range(10)]
    within = _kept(apply_policy(old, RetentionPolicy(keep_within=timedelta(hours=3)), NOW))
    assert len(within) == 4  # the newest and three more within 3 hours of it
    assert len(_kept(apply_policy(old, RetentionPolicy(older_than=timedelta(days=7)), NOW))) == 1  # the newest


def test_default_policy_is_the_seeds_seven_days():
    backups = [_B(NOW - timedelta(days=d)) for d in (1, 3, 6, 8, 10)]
    kept = _kept(apply_policy(backups, RetentionPolicy(), NOW))
    assert len(kept) == 3 and all(r[-1] == "younger than 7d" for r in kept.values())


def test_safety_backups_have_their_own_rule():
    regular = [_B(NOW - timedelta(days=d)) for d in (0, 1)]
    safety = [_B(NOW - timedelta(days=d, minutes=1), "safety") for d in (2, 9, 12)]
    decisions = apply_policy(regular + safety, RetentionPolicy(keep_last=1), NOW)
    kept = _kept(decisions)
    assert safety[0].backup_id in kept  # younger than 7 days, and the latest undo
    assert kept[safety[0].backup_id] == ["undo of the latest restore", "safety backup younger than 7 days"]
    assert safety[1].backup_id not in kept and safety[2].backup_id not in kept
    lone = apply_policy([_B(NOW - timedelta(days=20), "safety")] + regular, RetentionPolicy(keep_last=1), NOW)
    assert "undo of the latest restore" in _kept(lone)[(NOW - timedelta(days=20)).strftime("%Y%m%dT%H%M%SZ")]


@pytest.mark.parametrize("kw", [{"keep_last": -1}, {"keep_daily": "3"}, {"keep_within": timedelta(0)},
                                {"safety_days": -2}])
def test_invalid_policies(kw):
    with pytest.raises(UsageError):
        RetentionPolicy(**kw)


def test_policy_round_trips_through_json():
    p = RetentionPolicy(keep_last=2, keep_daily=7, keep_within=timedelta(days=2), safety_days=3)
    assert RetentionPolicy.from_json(p.to_json()) == p


def test_cli_dry_run_lists_every_decision(db, store, cli):
    from tests.cli import one_json

    db["a"].insert_one({"x": 1})
    ids = [create_backup(db, store, BackupOptions(user="t")).backup_id for _ in range(4)]
    body = one_json(cli("cleanup", "--keep-last", "2", "--dry-run", "--json"))
    assert sorted(body["deleted"]) == sorted(ids[:2]) and body["dry_run"] is True
    assert [d["backup_id"] for d in body["decisions"]] == ids[::-1]
    assert body["decisions"][0]["reasons"] == ["newest backup", "last 2"]
    assert len(store.list_backups()) == 4
    assert one_json(cli("cleanup", "--keep-last", "2", "--json"))["deleted"] == body["deleted"]
    bad = cli("cleanup", "--keep-last", "-1")
    assert bad.returncode == 2 and "0 or more" in bad.stderr


def test_pre_write_backups_have_their_own_rule_and_do_not_count_as_backups():
    regular = [_B(NOW - timedelta(days=d)) for d in (0, 1, 2)]
    pre = [_B(NOW - timedelta(days=d, minutes=3), "pre-write") for d in (0, 2, 5)]
    kept = _kept(apply_policy(regular + pre, RetentionPolicy(keep_last=2, pre_write_days=3), NOW))
    # keep_last counts full backups only: a pre-write backup of one collection never pushes one out
    assert kept[regular[1].backup_id] == ["last 2"] and regular[2].backup_id not in kept
    assert kept[pre[0].backup_id] == ["pre-write backup younger than 3 days"]
    assert pre[1].backup_id in kept and pre[2].backup_id not in kept


def test_archives_are_kept_until_deleted_by_hand_unless_archive_days_says_otherwise():
    regular = [_B(NOW - timedelta(days=d)) for d in (0, 1)]
    archives = [_B(NOW - timedelta(days=d, minutes=7), "archive") for d in (10, 400)]
    kept = _kept(apply_policy(regular + archives, RetentionPolicy(older_than=timedelta(days=7)), NOW))
    assert all(kept[a.backup_id] == ["archive (kept until deleted by hand)"] for a in archives)
    limited = _kept(apply_policy(regular + archives, RetentionPolicy(keep_last=1, archive_days=365), NOW))
    assert limited[archives[0].backup_id] == ["archive younger than 365 days"]
    assert archives[1].backup_id not in limited


@pytest.mark.parametrize("kw", [{"pre_write_days": -1}, {"pre_write_days": float("nan")},
                                {"pre_write_days": float("inf")}, {"archive_days": 0},
                                {"archive_days": "30"}, {"archive_days": float("nan")}])
def test_invalid_side_backup_rules(kw):
    with pytest.raises(UsageError):
        RetentionPolicy(**kw)


def test_side_backup_rules_round_trip_and_reach_the_cli(db, store, cli):
    from tests.cli import one_json

    p = RetentionPolicy(keep_last=2, pre_write_days=2.5, archive_days=90)
    assert RetentionPolicy.from_json(p.to_json()) == p
    assert RetentionPolicy.from_json({"keep_last": 2}).archive_days is None  # saved before these rules
    db["a"].insert_one({"x": 1})
    create_backup(db, store, BackupOptions(user="t", trigger="pre-write", collections=["a"]))
    body = one_json(cli("cleanup", "--keep-last", "1", "--pre-write-days", "0", "--archive-days", "30",
                        "--dry-run", "--json"))
    assert body["policy"]["pre_write_days"] == 0 and body["policy"]["archive_days"] == 30
    assert "pre-write backups 0 days; archives 30 days" in RetentionPolicy(
        keep_last=1, pre_write_days=0, archive_days=30).describe()
    bad = cli("cleanup", "--archive-days", "-3")
    assert bad.returncode == 2 and "--archive-days must be a number between 0 and 36500 days, got '-3'" in bad.stderr
