"""Schedules as people write them: `every 6h`, `cron 0 3 * * * (Europe/Paris)`, from a Prefect schedule's fields."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

# The units of pmf's DURATION (`30s`, `15m`, `6h`, `1d`, `7d`), largest first.
UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
UTC_NAMES = {None, "", "UTC", "Etc/UTC"}


def duration_text(seconds: float) -> str:
    """A duration in pmf's DURATION words: 86400 -> `1d`, 5400 -> `1h 30m`, 45 -> `45s`."""
    left, parts = round(seconds), []
    for unit, size in UNITS:
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts) or "0s"


def schedule_text(schedule: Mapping[str, Any]) -> str:
    """A schedule (the fields of Prefect's Interval-, Cron- or RRuleSchedule) in one short phrase; its
    timezone is named unless it is UTC."""
    zone = schedule.get("timezone")
    where = "" if zone in UTC_NAMES else f" ({zone})"
    if schedule.get("interval") is not None:
        interval = schedule["interval"]
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else float(interval)
        return f"every {duration_text(seconds)}{where}"
    if schedule.get("cron"):
        return f"cron {schedule['cron']}{where}"
    if schedule.get("rrule"):
        return f"rrule {schedule['rrule']}{where}"
    return "no schedule"
