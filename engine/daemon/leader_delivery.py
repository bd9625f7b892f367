"""The outbox deliverer of a replica: it delivers only while this replica leads, and checks
that before every single send.

Only the incident leader delivers, so there is one deliverer per database (the outbox's
per-incident order needs to see all of its rows). The check is the lease's *local* deadline
(`ReplicaSet.leading`, the monotonic clock), not a database round trip: a leader cut from
the database stops sending within its lease's time-to-live minus the margin, before any
other replica can have acquired the lease. An item not sent for that reason is deferred —
no attempt spent, nothing written — and the next leader sends it.

What stays at-least-once (the outbox's guarantee, docs/notifiers.md): a send already in
flight when the lease lapses, or a leader killed between a send and its `mark_sent`; the
next leader sends the same notification again, with the same id (Idempotency-Key) and
dedup_key, which receivers fold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.notify.delivery import Deliverer, DeliveryReport
from engine.store.base import OutboxItem


class LeaderDeliverer(Deliverer):
    """A `Deliverer` gated by `leading()` before each batch, each send and each sync."""

    def __init__(self, *args: Any, leading: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._leading = leading

    def run_once(self, now: float | None = None, **options: Any) -> DeliveryReport:
        if not self._leading():
            return DeliveryReport()  # nothing claimed, nothing sent
        return super().run_once(now, **options)

    def _deliver(
        self,
        item: OutboxItem,
        now: float,
        report: DeliveryReport,
        held: set[tuple[str, str]],
        pair: tuple[str, str],
    ) -> None:
        if not self._leading():
            held.add(pair)
            report.deferred += 1
            return
        super()._deliver(item, now, report, held, pair)

    def sync(
        self, open_incidents: Iterable[Any], now: float | None = None, **options: Any
    ) -> dict[str, str]:
        # Pushing the open incidents to Alertmanager is paging too: never from stale state.
        if not self._leading():
            return {}
        return super().sync(open_incidents, now, **options)
