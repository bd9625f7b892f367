"""Flap detection, as Nagios does it: percent state change over the last 21 evaluations.

An alert starts flapping above `flap.high_threshold` and stops below `flap.low_threshold`
(hysteresis). An incident with a flapping alert stays open (no resolve on every clear) and
sends no repeats; its timeline says so once, not on every flip.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.alerting.alerts import Alert
from engine.incidents.settings import Settings
from engine.incidents.state import FLAP_HISTORY, FlapState
from engine.incidents.transaction import Transaction

_NO_FLAP = FlapState()


def percent_state_change(states: Sequence[bool]) -> float:
    """Nagios' weighted percent state change over up to 21 states (oldest first).

    The 20 possible transitions are weighted linearly from 0.75 (oldest) to 1.25 (newest),
    so recent flapping counts more; the sum is scaled to a percentage of 20 transitions. A
    short history is treated as if padded with its oldest state (padding adds no changes).
    """
    n = len(states)
    slots = FLAP_HISTORY - 1
    offset = FLAP_HISTORY - n  # position of states[0] in a full window
    total = 0.0
    for i in range(1, n):
        if states[i] != states[i - 1]:
            x = offset + i  # 1..20 in a full window
            total += 0.75 + (x - 1) * 0.5 / (slots - 1)
    return total * 100.0 / slots


def update_flapping(
    settings: Settings, tx: Transaction, now: float, firing: dict[str, Alert], unknown: set[str]
) -> None:
    """Record this cycle in every known alert's history (not for SLOs without data), then
    start or stop flapping on the incidents they belong to."""
    st = tx.state
    flap = settings.config.flap
    if not flap.enabled:
        return
    for fp, alert_state in st.alerts.items():
        if alert_state.slo_id in unknown:
            continue
        old = st.flap.get(fp, _NO_FLAP)
        now_firing = fp in firing
        if (
            not old.flapping
            and old.percent == 0.0
            and len(old.states) == FLAP_HISTORY
            and old.states[-1] == now_firing
        ):
            continue  # a full, steady history stays exactly the same
        states = (*old.states, now_firing)[-FLAP_HISTORY:]
        percent = percent_state_change(states)
        flapping = old.flapping
        if not flapping and percent >= flap.high_threshold:
            flapping = True
        elif flapping and percent <= flap.low_threshold:
            flapping = False
        st.flap[fp] = FlapState(states=states, flapping=flapping, percent=round(percent, 3))
    for incident in st.incidents.values():
        now_flapping = any(st.flap.get(fp, FlapState()).flapping for fp in incident.fingerprints)
        if now_flapping == incident.flapping:
            continue
        incident.flapping = now_flapping
        percent = max(
            (st.flap[fp].percent for fp in incident.fingerprints if fp in st.flap), default=0.0
        )
        if now_flapping:
            tx.log(
                incident,
                now,
                "flapping_started",
                f"alerts flapping ({percent:.0f}% state change ≥ {flap.high_threshold:g}%): "
                "the incident stays open and repeats are held",
                data={"percent": percent},
            )
        else:
            tx.log(
                incident,
                now,
                "flapping_stopped",
                f"alerts stable again ({percent:.0f}% ≤ {flap.low_threshold:g}%)",
                data={"percent": percent},
            )
