"""The remediation vocabulary: every action a playbook or an operator may request, and the
conditions a step may be run under.

Triage's playbooks emit these names in ActionRequested; the remediator executes them
(only those on its allowlist, and the dangerous ones only after an operator approves).
A `Condition` (a playbook step's `when:`) is checked by the remediator at the moment the
step would run; an unmet one makes the step `skipped` with the reason.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "APPROVAL_BY_DEFAULT",
    "DANGEROUS_ACTIONS",
    "PROBES",
    "ActionName",
    "Condition",
    "OnFailure",
]

OnFailure = Literal["continue", "stop"]
"""What a step's failure means to its playbook: go on (with a note) or stop and escalate."""

PROBES = ("backend", "ollama", "postgres", "redis")
"""Components whose health a condition can ask for (the checks of runbook Phase 6)."""


class ActionName(StrEnum):
    """`ActionRequested.action` values. Target is a container name unless said otherwise."""

    # Docker (runbook Phases 3 and 5)
    DOCKER_RESTART = "docker.restart"
    DOCKER_STOP = "docker.stop"
    DOCKER_START = "docker.start"
    DOCKER_RECREATE = "docker.recreate"  # stop, remove, create again with the same config
    DOCKER_UPDATE_LIMITS = "docker.update_limits"  # params: memory ("2g"), cpus (1.0)
    DOCKER_STATS = "docker.stats"
    DOCKER_LOGS = "docker.logs"  # params: since_s (600), tail (200)
    # Data protection
    POSTGRES_BACKUP = "postgres.backup"  # emergency pg_dump to a timestamped file
    POSTGRES_WAIT_READY = "postgres.wait_ready"  # params: timeout_s (60)
    POSTGRES_CONNECTIONS = "postgres.connections"
    REDIS_BGSAVE = "redis.bgsave"  # then wait until LASTSAVE advances
    # Models
    OLLAMA_PULL = "ollama.pull"  # params: model ("tinyllama"); wait until /api/tags lists it
    # Evidence and checks
    DIAGNOSTICS_COLLECT = "diagnostics.collect"  # runbook Phase 4 evidence bundle
    VERIFY = "verify.all"  # runbook Phase 6 checks; params: checks (list) to narrow
    # One ordered action: stop backend → restart PostgreSQL → wait until ready → start backend
    RECOVERY_ORDERED_RESTART = "recovery.ordered_restart"  # params: backend, database
    # The runbook's destructive commands: never without an operator's approval
    DOCKER_SYSTEM_PRUNE = "docker.system_prune"
    DOCKER_VOLUME_PRUNE = "docker.volume_prune"
    REDIS_FLUSHDB = "redis.flushdb"


DANGEROUS_ACTIONS: frozenset[ActionName] = frozenset(
    {ActionName.DOCKER_SYSTEM_PRUNE, ActionName.DOCKER_VOLUME_PRUNE, ActionName.REDIS_FLUSHDB}
)

# What needs an operator's approval unless `remediator.approval_required` says otherwise:
# everything that stops a container for good or deletes, beyond a restart. The destructive
# commands always need it. Not by default, because the runbook runs them as automatic
# containment and each leaves every container running: its ordered restart (stop backend →
# restart PostgreSQL → wait → start backend, Phase 3 "Database Issues") and its resource
# limits on Ollama (Phase 3 "Resource Protection"). Waiting for a human there would leave
# a P0 database outage open until someone wakes up; add them to the setting to require it.
APPROVAL_BY_DEFAULT: frozenset[ActionName] = DANGEROUS_ACTIONS | {
    ActionName.DOCKER_STOP,
    ActionName.DOCKER_RECREATE,
}


class Condition(BaseModel):
    """When a step runs: `{container: X, state: running|stopped}` or `{probe: X, healthy: B}`.

    In a playbook, `container` is a service name (mapped to its container by triage);
    on the wire it is the container's name. A probe is one of `PROBES`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    container: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[a-zA-Z0-9$@][a-zA-Z0-9_.-]*$",
        description="A container (a service in a playbook) whose state is checked.",
    )
    state: Literal["running", "stopped"] | None = Field(
        default=None, description="The container state the step needs."
    )
    probe: Literal["backend", "ollama", "postgres", "redis"] | None = Field(
        default=None, description="A component whose health is checked."
    )
    healthy: bool | None = Field(default=None, description="The health the step needs.")

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        if (self.container is None) == (self.probe is None):
            raise ValueError("give either container (with state) or probe (with healthy)")
        if self.container is not None and (self.state is None or self.healthy is not None):
            raise ValueError("container needs state (running or stopped), and no healthy")
        if self.probe is not None and (self.healthy is None or self.state is not None):
            raise ValueError("probe needs healthy (true or false), and no state")
        return self

    def describe(self) -> str:
        if self.container is not None:
            return f"{self.container} is {self.state}"
        return f"{self.probe} is {'healthy' if self.healthy else 'unhealthy'}"
