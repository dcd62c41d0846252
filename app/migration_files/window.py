"""When queued imports are processed: ``IMPORT_WINDOW``, e.g. ``18:00-07:00`` in
``IMPORT_TIMEZONE`` (Europe/Amsterdam), or ``always`` (development and the demo)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

_SPEC = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Window:
    """Office hours' complement: processing may run from ``start`` to ``end`` local time
    (over midnight when ``end`` <= ``start``); ``None`` means always."""

    start: time | None
    end: time | None
    zone: ZoneInfo

    @classmethod
    def parse(cls, spec: str, zone: str) -> Window:
        spec = (spec or "always").strip().lower()
        if spec == "always":
            return cls(None, None, ZoneInfo(zone))
        match = _SPEC.match(spec)
        if not match:
            raise ValueError(f"IMPORT_WINDOW must be 'always' or 'HH:MM-HH:MM', not {spec!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        return cls(time(h1, m1), time(h2, m2), ZoneInfo(zone))

    @property
    def always(self) -> bool:
        return self.start is None

    def is_open(self, now: datetime) -> bool:
        if self.always:
            return True
        local = now.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def opens_at(self, now: datetime) -> datetime:
        """``now`` when the window is open, else the next moment it opens (aware)."""
        if self.is_open(now):
            return now
        local = now.astimezone(self.zone)
        candidate = datetime.combine(local.date(), self.start, tzinfo=self.zone)
        if candidate <= local:
            candidate += timedelta(days=1)
        return candidate


def current_window() -> Window:
    config = current_app.config
    return Window.parse(config["IMPORT_WINDOW"], config["IMPORT_TIMEZONE"])
