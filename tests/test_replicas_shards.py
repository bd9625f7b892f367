"""Rendezvous (highest-random-weight) sharding: every replica computes the same owner for an
SLO from the same member list, the shares are even, and a membership change moves only the
SLOs it must — a dead member's to the survivors, a new member's from the others."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from engine.daemon.replicas import Timings
from engine.daemon.shards import Assignment, owner, weight
from engine.spec.loader import load_specs

ROOT = Path(__file__).resolve().parent.parent

SLO_IDS = [f"svc-{i % 37}/slo-{i}" for i in range(3000)]


def owners(members: list[str]) -> dict[str, str]:
    return {slo_id: owner(slo_id, members) for slo_id in SLO_IDS}


def test_the_owner_is_the_same_whatever_the_order_of_the_members() -> None:
    assert owners(["a", "b", "c"]) == owners(["c", "a", "b"])
    # And the weight is a pure function of (member, slo): no process state, no salt.
    assert weight("a", "api/availability") == weight("a", "api/availability")
    assert weight("a", "api/availability") != weight("b", "api/availability")


def test_shares_are_even() -> None:
    counts = Counter(owners(["a", "b", "c"]).values())
    assert set(counts) == {"a", "b", "c"}
    for count in counts.values():
        assert abs(count - 1000) < 100, counts


def test_a_dead_member_moves_only_its_own_slos() -> None:
    before = owners(["a", "b", "c"])
    after = owners(["a", "c"])
    moved = {slo for slo in SLO_IDS if before[slo] != after[slo]}
    assert moved == {slo for slo in SLO_IDS if before[slo] == "b"}
    # ...and they spread over both survivors, not onto one.
    assert set(Counter(after[slo] for slo in moved)) == {"a", "c"}


def test_a_new_member_takes_only_what_it_now_wins() -> None:
    before = owners(["a", "b", "c"])
    after = owners(["a", "b", "c", "d"])
    moved = {slo for slo in SLO_IDS if before[slo] != after[slo]}
    assert {after[slo] for slo in moved} == {"d"}
    assert abs(len(moved) - 750) < 100


def test_assignment_keeps_spec_order_and_counts_itself_in() -> None:
    slos = load_specs([ROOT / "slo_specs"]).slos
    mine = Assignment(("a", "b"), "a").mine(slos)
    theirs = Assignment(("a", "b"), "b").mine(slos)
    assert sorted(s.id for s in mine + theirs) == sorted(s.id for s in slos)
    assert [s.id for s in mine] == [s.id for s in slos if s in mine]
    # A replica missing from the member list it read (its row not visible yet) still
    # counts itself: it never evaluates everything, nor nothing, by mistake.
    assert Assignment(("b",), "a").mine(slos) == mine


@pytest.mark.parametrize(
    ("interval", "heartbeat", "member_ttl", "lease_ttl"),
    [(2.0, 2 / 3, 3.0, 2.0), (30.0, 5.0, 45.0, 30.0), (300.0, 5.0, 450.0, 300.0)],
)
def test_timings_follow_the_interval(
    interval: float, heartbeat: float, member_ttl: float, lease_ttl: float
) -> None:
    timings = Timings(interval)
    assert timings.heartbeat == pytest.approx(heartbeat)
    assert timings.member_ttl == member_ttl
    assert timings.lease_ttl == lease_ttl
    assert timings.stale_after == 2 * interval
    # A dead leader is replaced within its lease plus one heartbeat: inside two intervals.
    assert timings.lease_ttl + timings.heartbeat < 2 * interval
