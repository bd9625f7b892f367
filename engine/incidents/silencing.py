"""Silences inside the engine: creating and expiring them, and what they mute.

The matchers and the `Silence` record are in `silences`. Here: a silence gets the next
`SIL-<n>` id; an alert matching an active silence opens no incident and sends nothing; an
incident whose every firing alert is silenced stays open but quiet; an expired silence is
dropped from the state (the store keeps its record).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from engine.alerting.alerts import Alert
from engine.incidents.incident import Incident
from engine.incidents.silences import Matcher, Silence, parse_matchers
from engine.incidents.state import EngineState
from engine.incidents.transaction import Transaction


def add_silence(
    tx: Transaction,
    now: float,
    matchers: Sequence[str | Matcher],
    starts_at: float,
    ends_at: float,
    created_by: str,
    comment: str,
) -> None:
    st = tx.state
    st.silence_seq += 1
    silence = Silence(
        id=f"SIL-{st.silence_seq:06d}",
        matchers=parse_matchers(matchers),
        starts_at=float(starts_at),
        ends_at=float(ends_at),
        created_by=created_by,
        comment=comment,
        created_at=now,
    )
    st.silences[silence.id] = silence
    tx.silences_upserted.append(silence)
    tx.dirty = True


def end_silence(tx: Transaction, now: float, silence_id: str) -> bool:
    """End an active silence now; False if there is no such silence."""
    silence = tx.state.silences.pop(silence_id, None)
    if silence is None:
        return False
    tx.silences_upserted.append(replace(silence, ends_at=max(now, silence.starts_at + 0.001)))
    tx.dirty = True
    return True


def expire_silences(tx: Transaction, now: float) -> None:
    st = tx.state
    for sid, silence in list(st.silences.items()):
        if silence.expired(now):
            del st.silences[sid]
            tx.dirty = True


def silenced(st: EngineState, alert: Alert, now: float) -> bool:
    return any(s.matches(alert.labels, now) for s in st.silences.values())


def quiet(st: EngineState, incident: Incident) -> bool:
    """Every firing alert of the incident is silenced: keep it open, keep it quiet."""
    firing = [
        st.alerts[fp]
        for fp in incident.fingerprints
        if fp in st.alerts and st.alerts[fp].cleared_at is None
    ]
    return bool(firing) and all(a.silenced for a in firing)
