"""One request to a receiver has a TOTAL deadline (connect, send, the whole response), not a
per-read timeout: a receiver dripping its answer one byte every 2 s is cut at the deadline,
like one that never answers, and the attempt is a retryable failure. Real sockets on
127.0.0.1 (harness.stalling_receiver)."""

from __future__ import annotations

import threading
import time

import pytest
from harness.stalling_receiver import StallingReceiver, wait_until
from test_notify_receiver import notification

from engine.notify.base import RetryableDeliveryError
from engine.notify.factory import build_notifiers
from engine.notify.http import post_json

DEADLINE = 3.0


@pytest.mark.parametrize("mode", ["drip", "hang"])
def test_a_stalling_receiver_is_cut_at_the_total_deadline(mode: str) -> None:
    # A byte every 2 s: a 3 s socket timeout never fires, the 45-byte answer takes 90 s.
    with StallingReceiver(mode, every=2.0) as receiver:
        started = time.monotonic()
        with pytest.raises(RetryableDeliveryError, match=r"timed out after 3s \(deadline"):
            post_json(receiver.url, b"{}", timeout=DEADLINE, what="webhook receiver 'slow'")
        elapsed = time.monotonic() - started
        assert DEADLINE - 0.1 <= elapsed < DEADLINE + 0.5
        assert receiver.attempts() == 1 and receiver.answered == 0


def test_the_cut_connection_is_closed_not_left_dripping() -> None:
    """At the deadline the socket is shut, so the receiver sees the client go at once (the
    helper thread of the exchange does not keep reading in the background)."""
    with StallingReceiver("drip", every=0.5) as receiver:
        with pytest.raises(RetryableDeliveryError):
            post_json(receiver.url, b"{}", timeout=1.0)
        # The exchange's thread was blocked reading the drip: the shut socket ends it now,
        # not when the drip would have finished (22 s).
        wait_until(
            lambda: "notify-http" not in {t.name for t in threading.enumerate()},
            2,
            "the exchange thread to end",
        )
        assert receiver.answered == 0


def test_a_notifier_send_is_bounded_by_its_timeout_seconds() -> None:
    with StallingReceiver("drip", every=1.0) as receiver:
        notifier = build_notifiers(
            {"slow": {"type": "webhook", "url": receiver.url, "timeout_seconds": 2}}
        )["slow"]
        started = time.monotonic()
        with pytest.raises(RetryableDeliveryError, match="timed out"):
            notifier.send(notification())
        assert time.monotonic() - started < 2.5
        receiver.healthy = True
        notifier.send(notification())  # the same receiver, answering at once: accepted
        assert receiver.answered == 1
        assert len(set(receiver.keys)) == 1  # both attempts: the same notification
