"""After the incident: action items and the end of the post-incident review.

Action items (`AI-<n>` per incident: what, who owns it, open or done) can be added to any
incident, open or closed — most come out of the review. An incident resolved at one of
`review_severities` stays in `review` until a person closes its review; closing does not
wait for the action items, which often outlive the review and stay tracked on the incident.
Nothing here notifies anyone: this is bookkeeping, recorded on the timeline.
"""

from __future__ import annotations

from engine.incidents.incident import Incident, IncidentStatus
from engine.incidents.response import ActionItem, ActionStatus
from engine.incidents.transaction import Transaction, evolve

# Marks "leave the owner as it is" apart from "no owner" (None).
KEEP = "\x00keep"


def add_action_item(
    tx: Transaction, now: float, incident: Incident, text: str, owner: str | None, by: str
) -> ActionItem:
    number = max((int(a.id.split("-")[1]) for a in incident.action_items), default=0) + 1
    item = ActionItem(
        id=f"AI-{number}",
        text=text,
        owner=owner,
        status="open",
        created_at=now,
        created_by=by,
    )
    incident.action_items.append(item)
    tx.log(
        incident,
        now,
        "action_item",
        f"action item {item.id} added: {text}" + (f" (owner {owner})" if owner else ""),
        actor=by,
        data={"item": item.id, "change": "added", "status": "open", "owner": owner},
    )
    return item


def change_action_item(
    tx: Transaction,
    now: float,
    incident: Incident,
    item_id: str,
    by: str,
    status: ActionStatus | None = None,
    owner: str | None = KEEP,
) -> ActionItem:
    """Mark an item done (or open again) and/or give it to someone; KeyError if unknown."""
    index = next((i for i, a in enumerate(incident.action_items) if a.id == item_id), None)
    if index is None:
        raise KeyError(f"{incident.id} has no action item {item_id}")
    old = incident.action_items[index]
    changes: dict[str, object] = {}
    if status is not None and status != old.status:
        done = status == "done"
        changes.update(status=status, done_at=now if done else None, done_by=by if done else None)
    if owner != KEEP and owner != old.owner:
        changes["owner"] = owner
    if not changes:
        return old
    item: ActionItem = evolve(old, **changes)
    incident.action_items = [
        *incident.action_items[:index],
        item,
        *incident.action_items[index + 1 :],
    ]
    said = []
    if "status" in changes:
        said.append("done" if item.status == "done" else "open again")
    if "owner" in changes:
        said.append(f"owner {item.owner}" if item.owner else "no owner")
    tx.log(
        incident,
        now,
        "action_item",
        f"action item {item.id} {', '.join(said)}: {item.text}",
        actor=by,
        data={"item": item.id, "change": "changed", "status": item.status, "owner": item.owner},
    )
    return item


def close_review(tx: Transaction, now: float, incident: Incident, by: str, note: str) -> None:
    """End the post-incident review of an incident in `review`: it is resolved now."""
    if incident.status is not IncidentStatus.review:
        raise ValueError(f"{incident.id} is {incident.status.value}, not in review")
    incident.status = IncidentStatus.resolved
    still_open = [a.id for a in incident.action_items if a.status == "open"]
    tx.log(
        incident,
        now,
        "review_closed",
        "post-incident review closed"
        + (f": {note}" if note else "")
        + (f" ({len(still_open)} action items still open)" if still_open else ""),
        actor=by,
        data={"open_action_items": still_open},
    )
