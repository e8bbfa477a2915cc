"""When a scheduled function is due: App Engine cron ("every 5 minutes") and unix cron."""

from __future__ import annotations

import re
from datetime import datetime, timedelta


def next_run(schedule: str, after: datetime) -> datetime:
    """The first time strictly after `after` at which `schedule` fires."""
    m = re.fullmatch(r"every\s+(\d+)\s+(minute|minutes|hour|hours|mins)", schedule.strip())
    if m:
        n = int(m.group(1))
        step = timedelta(hours=n) if m.group(2).startswith("hour") else timedelta(minutes=n)
        return after + step
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"unsupported schedule: {schedule!r}")
    minutes, hours, days, months, weekdays = (
        _parse_field(f, lo, hi)
        for f, (lo, hi) in zip(fields, [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)], strict=True)
    )
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(366 * 24 * 60):
        if (
            t.minute in minutes
            and t.hour in hours
            and t.day in days
            and t.month in months
            and (t.isoweekday() % 7) in weekdays
        ):
            return t
        t += timedelta(minutes=1)
    raise ValueError(f"schedule never fires: {schedule!r}")


def _parse_field(field: str, lo: int, hi: int) -> set[int]:
    values: set[int] = set()
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, step_s = part.split("/")
            step = int(step_s)
        if part == "*":
            start, end = lo, hi
        elif "-" in part:
            a, b = part.split("-")
            start, end = int(a), int(b)
        else:
            start = end = int(part)
        values.update(range(start, end + 1, step))
    return values
