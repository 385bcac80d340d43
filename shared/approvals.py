"""Signed approvals: only the recorder API (which checked the operator's token) can make an
`ActionApproved` that the remediator acts on.

Anyone able to XADD to `jarvis:incidents` could otherwise approve a dangerous action. The
signature covers the action, the approver and the moment of the approval with a key only
the recorder and the remediator hold (`approval_key`); the remediator also refuses an
approval older than the time an action may wait for one, so a copy of an old approval
read from the timeline approves nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import ActionApproved
from shared.keys import Signer

__all__ = ["approval_problem", "sign_approval"]

_PURPOSE = "jarvis-ir ActionApproved v1"
_CLOCK_SKEW = timedelta(seconds=60)


def _parts(action_id: str, approver: str, at: datetime) -> tuple[str, str, str, str]:
    return (_PURPOSE, action_id, approver, at.astimezone(UTC).isoformat(timespec="microseconds"))


def sign_approval(signer: Signer, **fields: Any) -> ActionApproved:
    """An ActionApproved with `fields`, stamped now and signed."""
    unsigned = ActionApproved(**fields)
    signature = signer.sign(*_parts(unsigned.action_id, unsigned.approver, unsigned.occurred_at))
    return unsigned.model_copy(update={"signature": signature})


def approval_problem(
    signer: Signer, approval: ActionApproved, now: datetime, max_age: timedelta
) -> str | None:
    """Why the remediator must not act on `approval`, or None when it may."""
    if not approval.signature:
        return "it is not signed"
    parts = _parts(approval.action_id, approval.approver, approval.occurred_at)
    if not signer.verify(approval.signature, *parts):
        return "its signature is not valid"
    age = now - approval.occurred_at
    if age > max_age + _CLOCK_SKEW or age < -_CLOCK_SKEW:
        return f"it was signed at {approval.occurred_at.isoformat()}, outside the approval window"
    return None
