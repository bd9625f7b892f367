"""Who a caller is and what they may do: the API's four roles and the identity every change
is recorded under.

Roles (issue 13), each a set of routes:
- `read`: every GET of the API and the internal view of the status page;
- `responder`: incident response — acknowledge, comment, resolve, status, severity, roles,
  stakeholder updates, action items, declaring an incident;
- `admin`: silences (and the audit log): what changes how the engine alerts for everyone;
- `security`: security incidents — seeing them at all, and acting on them.

`admin` includes `responder`, which includes `read`; `security` includes `read` only, so an
admin does not see security incidents unless also given `security` (least privilege: the
people who run the alerting are not necessarily cleared for breach investigations).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Role = Literal["read", "responder", "admin", "security"]
ROLES: tuple[Role, ...] = ("read", "responder", "admin", "security")
_IMPLIES: dict[str, frozenset[str]] = {
    "read": frozenset(),
    "responder": frozenset({"read"}),
    "admin": frozenset({"responder", "read"}),
    "security": frozenset({"read"}),
}


def expand(roles: Iterable[str]) -> frozenset[str]:
    """The roles given plus the ones they include (admin → responder → read)."""
    found: set[str] = set()
    for role in roles:
        found.add(role)
        found |= _IMPLIES.get(role, frozenset())
    return frozenset(found)


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. `name` is the actor recorded for what they change: the
    token's subject (or configured name claim), or a static token's name."""

    name: str
    roles: frozenset[str]
    # "token" (the static token file) or "oidc" (a verified JWT access token).
    via: Literal["token", "oidc"]

    def has(self, role: str) -> bool:
        return role in self.roles

    def roles_text(self) -> str:
        """The roles as written in logs and the audit log: `admin,security`, or `none`."""
        shown = [r for r in ROLES if r in self.roles]
        return ",".join(shown) or "none"
