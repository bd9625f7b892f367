"""Maintenance windows declared at run time (the API), and how they join the spec's.

The API declares, lists and ends windows in the store (engine/store/maintenance_windows.py);
every replica reads them back at the start of each cycle and gives each SLO its spec
windows plus the stored ones matching it (`merge`). From there they are spec windows in
all but origin: the cache masks their events, alerts raised inside them (and their grace)
are muted, the status page announces them — one code path (engine/evaluation/maintenance.py).

A window takes effect at the next cycle. One that ended stays in effect for the past it
covered (its events stay excluded), so windows that ended up to the longest SLO period ago
are read. A store that cannot be read keeps the windows last read: dropping them would
count maintenance traffic and page for it.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from engine.evaluation.evaluator import Evaluator
from engine.spec.maintenance import FixedWindow
from engine.spec.models import SLO
from engine.store.base import StoreError
from engine.store.maintenance_windows import MaintenanceWindows, StoredWindow

log = logging.getLogger(__name__)

DAY = 86_400.0


class ApiWindow(FixedWindow):
    """A spec-shaped window that came from the API (its id in the store)."""

    id: str


def _api_window(window: StoredWindow) -> ApiWindow | None:
    try:
        return ApiWindow(
            id=window.id,
            start=datetime.fromtimestamp(window.starts_at, UTC),
            end=datetime.fromtimestamp(window.end, UTC),
            reason=window.reason,
        )
    except ValidationError as exc:  # a row no API request could have written
        log.warning("maintenance window %s ignored: %s", window.id, exc.errors()[0]["msg"])
        return None


def with_windows(slo: SLO, windows: Sequence[tuple[StoredWindow, ApiWindow]]) -> SLO:
    """The SLO with its spec windows and the API windows matching it."""
    spec = tuple(w for w in slo.maintenance if not isinstance(w, ApiWindow))
    api = tuple(a for s, a in windows if s.matches(slo.service, slo.base_id))
    merged = spec + api
    return slo if merged == slo.maintenance else dataclasses.replace(slo, maintenance=merged)


class DaemonMaintenance:
    """The API's windows: declared, listed, ended; merged into the SLOs each cycle."""

    def __init__(self, windows: MaintenanceWindows | None, evaluator: Evaluator) -> None:
        self.windows = windows  # None: a store without the table (never the daemon's)
        self._evaluator = evaluator
        self._read: list[tuple[StoredWindow, ApiWindow]] = []
        self._converted: dict[tuple[str, float], ApiWindow | None] = {}

    def _fleet(self) -> tuple[SLO, ...]:
        # A replica's evaluator keeps every SLO of the specs as its fleet (engine.daemon.
        # shards): windows go there, so a newly owned SLO arrives with them.
        return tuple(getattr(self._evaluator, "fleet", self._evaluator.slos))

    def _store(self) -> MaintenanceWindows:
        if self.windows is None:
            raise StoreError("this store keeps no maintenance windows")
        return self.windows

    # ------------------------------------------------------------------ the cycle

    def merge(self, now: float) -> None:
        """Give every SLO its spec windows plus the API's matching it (before evaluation)."""
        if self.windows is None:
            return
        fleet = self._fleet()
        if not fleet:
            return
        since = now - max(s.period.seconds for s in fleet) - DAY
        try:
            stored = self.windows.ending_after(since)
        except Exception as exc:  # sqlite3/psycopg errors: keep what was read last
            log.warning("maintenance windows unreadable, keeping the last read: %s", exc)
        else:
            self._read = self._convert(w for w in stored if not w.cancelled and w.end > since)
        merged = [with_windows(slo, self._read) for slo in fleet]
        if all(a is b for a, b in zip(merged, fleet, strict=True)):
            return
        try:
            self._evaluator.set_slos(merged)
        except Exception:  # same windows of evaluation: cannot fail, but never stop a cycle
            log.exception("maintenance windows not applied")

    def _convert(self, stored: Iterable[StoredWindow]) -> list[tuple[StoredWindow, ApiWindow]]:
        out: list[tuple[StoredWindow, ApiWindow]] = []
        converted: dict[tuple[str, float], ApiWindow | None] = {}
        for window in stored:
            key = (window.id, window.end)
            api = self._converted[key] if key in self._converted else _api_window(window)
            converted[key] = api
            if api is not None:
                out.append((window, api))
        self._converted = converted
        return out

    # ------------------------------------------------------------------ the API

    def check_matchers(self, services: Sequence[str], slos: Sequence[str]) -> None:
        """ValueError unless the matchers name loaded services and SLOs, and cover one SLO."""
        known = [*self._fleet(), *getattr(self._evaluator, "undiscovered", ())]
        names = {s.service for s in known}
        ids = {s.base_id for s in known}
        for service in services:
            if service not in names:
                raise ValueError(f"matchers.service: no service {service!r} in the specs")
        for slo_id in slos:
            if slo_id not in ids:
                raise ValueError(f"matchers.slo: no SLO {slo_id!r} in the specs")
        probe = StoredWindow("", tuple(services), tuple(slos), 0.0, 1.0, "", "", 0.0)
        if not any(probe.matches(s.service, s.base_id) for s in known):
            raise ValueError("matchers: no SLO matches both `service` and `slo`")

    def declare(
        self,
        services: Sequence[str],
        slos: Sequence[str],
        span: tuple[float, float],
        reason: str,
        by: str,
        now: float,
    ) -> StoredWindow:
        """Store a new window. ValueError for matchers naming nothing loaded, StoreError
        when the store cannot be written."""
        self.check_matchers(services, slos)
        window = StoredWindow(
            id=f"mw-{secrets.token_hex(8)}",
            services=tuple(services),
            slos=tuple(slos),
            starts_at=span[0],
            ends_at=span[1],
            reason=reason,
            created_by=by,
            created_at=now,
        )
        try:
            self._store().add(window)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"maintenance window not stored: {type(exc).__name__}") from None
        return window

    def listed(self, now: float, everything: bool) -> list[StoredWindow]:
        """Active and upcoming windows by start; `everything`: ended and cancelled too."""
        store = self._store()
        try:
            found = store.all() if everything else store.ending_after(now)
        except Exception as exc:
            raise StoreError(f"maintenance windows unreadable: {type(exc).__name__}") from None
        return found if everything else [w for w in found if w.state(now) in _OPEN]

    def end(self, window_id: str, by: str, now: float) -> StoredWindow:
        """End an active window now, cancel an upcoming one. KeyError: unknown id;
        ValueError: already over."""
        store = self._store()
        try:
            window = store.get(window_id)
            if window is None:
                raise KeyError(f"no maintenance window {window_id}")
            if window.state(now) not in _OPEN:
                raise ValueError(
                    f"maintenance window {window_id} is already {window.state(now)}; "
                    "a past window cannot be changed"
                )
            ended = store.end_early(window_id, now, by)
        except (KeyError, ValueError):
            raise
        except Exception as exc:
            raise StoreError(f"maintenance window not ended: {type(exc).__name__}") from None
        if ended is None:
            raise KeyError(f"no maintenance window {window_id}")
        return ended


_OPEN = frozenset({"active", "upcoming"})
