"""jobs.py: collections ``jobs`` at a time, progress relayed, the first error in order wins."""

from __future__ import annotations

import threading

import pytest


def test_default_jobs_follow_the_cpus(monkeypatch):
    from backup_core import jobs as jobs_mod

    for cpus, jobs in ((1, 1), (2, 2), (16, 4), (None, 1)):
        monkeypatch.setattr(jobs_mod.os, "cpu_count", lambda cpus=cpus: cpus)
        assert jobs_mod.default_jobs() == jobs


def test_run_jobs_relays_errors_in_order_and_discards_results():
    from backup_core.jobs import JobCancelled, run_jobs

    all_running = threading.Barrier(3, timeout=10)
    discarded = []
    reports = []

    def work(name, report):
        if name in ("b", "c"):
            all_running.wait()
            if name == "b":
                threading.Event().wait(0.3)  # fails after c...
                raise ValueError("b broke")
            raise KeyError("c broke")
        if name == "slow":
            all_running.wait()
            for i in range(1000):  # stops at its next report once another job failed
                report(name, i, 1000)
                threading.Event().wait(0.01)
        return name.upper()

    # ...but b comes first in collection order: its error is the one raised
    with pytest.raises(ValueError, match="b broke"):
        run_jobs(["a", "b", "c", "slow"], work, 4, lambda *a: reports.append(a), discard=discarded.append)
    # the results of the jobs that succeeded are handed back for clean-up; "slow" was stopped
    assert discarded == ["A"]
    assert all(r[0] == "slow" for r in reports) and len(reports) < 1000
    assert run_jobs(["x", "y"], lambda n, r: n * 2, 2) == {"x": "xx", "y": "yy"}
    assert run_jobs(["x", "y"], lambda n, r: n * 2, 1) == {"x": "xx", "y": "yy"}
    assert issubclass(JobCancelled, Exception)


def test_a_later_failure_never_hides_an_earlier_one():
    """The error is the first failing name's in order, whatever the timing: a later job's failure
    does not stop the jobs before it (it would hide their errors), only those after it."""
    from backup_core.jobs import run_jobs

    later_failed = threading.Event()
    reports = []

    def work(name, report):
        if name == "late":
            raise KeyError("late broke")
        if name == "early":
            later_failed.wait(10)
            for i in range(20):  # keeps reporting after the later failure: not stopped
                report(name, i, 20)
                threading.Event().wait(0.01)
            raise ValueError("early broke")
        for i in range(1000):  # after the failures in order: stopped at its next report
            report(name, i, 1000)
            threading.Event().wait(0.01)
        return name

    def progress(*event):
        reports.append(event)

    import backup_core.jobs as jobs_mod

    real_wait = jobs_mod.wait

    def wait_then_signal(*a, **kw):  # let "early" go on once the later failure was seen
        out = real_wait(*a, **kw)
        if any(f.exception() is not None for f in out[0] if not f.cancelled()):
            later_failed.set()
        return out

    jobs_mod.wait = wait_then_signal
    try:
        with pytest.raises(ValueError, match="early broke"):
            run_jobs(["early", "late", "after"], work, 3, progress)
    finally:
        jobs_mod.wait = real_wait
    assert len([r for r in reports if r[0] == "early"]) == 20
    assert len([r for r in reports if r[0] == "after"]) < 1000
