"""The "backups over time" and storage charts of Home and Browse (Altair, which ships with Streamlit).

Times are shown in one stated time zone, 24-hour clock, on a real time axis
whose domain is padded in proportion to the backups' span (half an hour
either side of a single backup, so it is a point in a sensible hour rather
than an axis of milliseconds; a few minutes either side of backups minutes
apart, so they do not pile up in the middle). Vega-Lite would otherwise show times in the
browser's zone without saying which; here every time is converted to the
zone named in the axis title and handed to Vega-Lite as UTC wall time with a
UTC scale, so what the axis says is exactly what is drawn.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

import altair as alt
import pandas as pd

from backup_core.units import format_bytes as human_bytes

# label each point only while labels stay readable
MAX_LABELLED_POINTS = 24
# the newest backups drawn at most (hourly backups kept for weeks would be a smear)
MAX_POINTS = 500
SINGLE_PAD = timedelta(minutes=30)  # either side of a single backup
MIN_PAD = timedelta(seconds=5)      # either side of several


def _wall(dt: datetime, tz: tzinfo) -> datetime:
    """``dt`` as the wall-clock time in ``tz``, labelled UTC (see the module docstring)."""
    return dt.astimezone(tz).replace(tzinfo=timezone.utc)


def backups_frame(backups, tz: tzinfo) -> pd.DataFrame:
    """One row per backup, oldest first: wall time in ``tz``, size in KB, documents, labels."""
    rows = [{
        "when": _wall(b.created, tz),
        "time": b.created.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
        "size_kb": round(b.total_bytes / 1024, 1),
        "size": human_bytes(b.total_bytes),
        "documents": b.total_documents,
        "backup": b.backup_id,
        "trigger": b.trigger,
    } for b in backups]
    frame = pd.DataFrame(rows, columns=["when", "time", "size_kb", "size", "documents", "backup", "trigger"])
    return frame.sort_values("when").reset_index(drop=True)


def _domain(frame: pd.DataFrame) -> tuple[datetime, datetime]:
    """The time axis: the backups' span, padded by a twentieth of it (see the module docstring)."""
    first, last = frame["when"].min().to_pydatetime(), frame["when"].max().to_pydatetime()
    pad = SINGLE_PAD if last == first else max(MIN_PAD, (last - first) * 0.05)
    return first - pad, last + pad


def _spaced_labels(frame: pd.DataFrame, values: pd.Series) -> list[str]:
    """A label per point, but only where it does not run into its neighbour's; the newest always."""
    lo, hi = _domain(frame)
    gap = (hi - lo) / 6  # about one label's width ("84.7 KB") on a half-page chart
    labels = [""] * len(frame)
    last_kept = None
    for i in range(len(frame) - 1, -1, -1):  # newest first
        when = frame["when"].iloc[i]
        if last_kept is None or last_kept - when >= gap:
            labels[i] = values.iloc[i]
            last_kept = when
    return labels


def _time_axis(frame: pd.DataFrame, zone_label: str) -> alt.X:
    lo, hi = _domain(frame)
    first, last = frame["when"].min().to_pydatetime(), frame["when"].max().to_pydatetime()
    # a day or less: hours and minutes; longer: the date too (always 24 h, never AM/PM)
    if hi - lo <= timedelta(minutes=20):
        fmt = "%H:%M:%S"  # backups seconds or minutes apart: ticks a minute apart would repeat a label
    elif last - first <= timedelta(days=1) and first.date() == last.date():
        fmt = "%H:%M"
    else:
        fmt = "%d %b %H:%M"
    # Measured in Chromium: a domain of epoch numbers, or formatType "utc", breaks the axis (no ticks,
    # or AM/PM labels); ISO strings and the utc scale alone label it in UTC, with our format.
    return alt.X("when:T", title=f"time ({zone_label})",
                 scale=alt.Scale(type="utc", domain=[lo.isoformat(), hi.isoformat()]),
                 axis=alt.Axis(format=fmt, labelAngle=0, labelOverlap=True, tickCount=6))


def over_time(frame: pd.DataFrame, zone_label: str, field: str, title: str, label_field: str,
              color: str) -> alt.LayerChart:
    """Points (joined by a line when there are several), labelled with their values where there is room."""
    x = _time_axis(frame, zone_label)
    y = alt.Y(f"{field}:Q", title=title, scale=alt.Scale(zero=True, nice=True))
    tooltip = [alt.Tooltip("time:N", title=f"time ({zone_label})"), alt.Tooltip("backup:N"),
               alt.Tooltip("trigger:N"), alt.Tooltip("size:N"), alt.Tooltip("documents:Q", format=",")]
    base = alt.Chart(frame).encode(x=x, y=y, tooltip=tooltip)
    layers = []
    if len(frame) > 1:
        layers.append(base.mark_line(color=color, strokeWidth=2))
    layers.append(base.mark_point(color=color, filled=True, size=60))
    if len(frame) <= MAX_LABELLED_POINTS:
        labelled = frame.assign(label=_spaced_labels(frame, frame[label_field]))
        layers.append(alt.Chart(labelled).mark_text(dy=-12, fontSize=11, color="#31333F")
                      .encode(x=x, y=y, text="label:N", tooltip=tooltip))
    return alt.layer(*layers).properties(height=260)


def size_and_documents(backups, tz: tzinfo, zone_label: str) -> tuple[alt.LayerChart, alt.LayerChart]:
    frame = backups_frame(backups, tz)
    frame["documents_label"] = frame["documents"].map(lambda n: f"{n:,}")
    return (over_time(frame, zone_label, "size_kb", "size (KB)", "size", "#1f77b4"),
            over_time(frame, zone_label, "documents", "documents", "documents_label", "#2ca02c"))


STORED = "in storage, in total (shared data and compression counted once)"
LOGICAL = "as full copies, in total (what they would take without sharing)"


def storage_frame(backups, tz: tzinfo) -> pd.DataFrame:
    """After each backup, oldest first: what the listed backups up to it take in storage, and as full copies.

    Both grow with every backup, so the gap between them is what sharing
    unchanged data and compression save (a line per backup of what it alone
    added would zig-zag between full and shared backups).
    """
    rows = []
    stored = logical = 0
    for b in sorted(backups, key=lambda b: (b.created, b.backup_id)):
        stored += b.stored_bytes
        logical += b.logical_bytes
        for series, value in ((STORED, stored), (LOGICAL, logical)):
            rows.append({"when": _wall(b.created, tz), "time": b.created.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
                         "kb": round(value / 1024, 1), "size": human_bytes(value), "series": series,
                         "backup": b.backup_id, "trigger": b.trigger, "documents": b.total_documents})
    return pd.DataFrame(rows, columns=["when", "time", "kb", "size", "series", "backup", "trigger", "documents"])


def storage_over_time(backups, tz: tzinfo, zone_label: str) -> alt.LayerChart:
    """Two rising lines: the total the backups take in storage, and the total as full copies."""
    frame = storage_frame(backups, tz)
    x = _time_axis(frame, zone_label)
    color = alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=0),
                      scale=alt.Scale(domain=[STORED, LOGICAL], range=["#ff7f0e", "#9467bd"]))
    tooltip = [alt.Tooltip("time:N", title=f"time ({zone_label})"), alt.Tooltip("backup:N"),
               alt.Tooltip("series:N"), alt.Tooltip("size:N")]
    base = alt.Chart(frame).encode(x=x, y=alt.Y("kb:Q", title="KB", scale=alt.Scale(zero=True)), color=color,
                                   tooltip=tooltip)
    layers = [base.mark_point(filled=True, size=50)]
    if frame["backup"].nunique() > 1:
        layers.insert(0, base.mark_line(strokeWidth=2))
    return alt.layer(*layers).properties(height=260)


def storage_by_collection(backups) -> pd.DataFrame:
    """Per collection, over the listed backups: logical bytes in all of them, bytes actually stored."""
    logical: dict[str, int] = {}
    stored: dict[str, int] = {}
    copies: dict[str, int] = {}
    for b in backups:
        for name, e in b.collections.items():
            logical[name] = logical.get(name, 0) + e.logical_bytes
            copies[name] = copies.get(name, 0) + 1
            if b.reused_from(name) is None:
                stored[name] = stored.get(name, 0) + e.stored_bytes
    rows = [{"collection": n, "in backups": copies[n], "logical size": human_bytes(logical[n]),
             "actually stored": human_bytes(stored.get(n, 0)),
             "saved": f"{100 * (1 - stored.get(n, 0) / logical[n]):.0f} %" if logical[n] else "–"}
            for n in sorted(logical)]
    return pd.DataFrame(rows, columns=["collection", "in backups", "logical size", "actually stored", "saved"])
