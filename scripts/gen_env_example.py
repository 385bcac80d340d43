"""Write `.env.example`: every variable docker-compose.yml reads, and every setting of
shared/settings/ with its default and description, generated from the Settings model.

    python scripts/gen_env_example.py          # rewrite .env.example
    python scripts/gen_env_example.py --check  # exit 1 if .env.example is out of date

tests/unit/test_deploy_env_example.py fails when a setting is missing from the file, so run
this after adding a setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.settings import Settings  # noqa: E402  (after the path set-up above)

ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS_MARKER = "# ==== Settings of the services"


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    description: str
    active: bool = False  # written uncommented


# Variables of docker-compose.yml and deploy/compose.hostnet.yml (not settings: compose
# substitutes them into the files). tests/unit/test_deploy_env_example.py checks that this
# list and the compose files agree.
COMPOSE_VARIABLES: tuple[Variable, ...] = (
    Variable(
        "JARVIS_IR_POSTGRES_PASSWORD",
        "",
        "Password of the recorder's PostgreSQL user `jarvis_ir` (required; letters and digits, "
        "as it goes into DATABASE_URL unescaped).",
        active=True,
    ),
    *(
        Variable(
            f"JARVIS_IR_REDIS_{user.upper()}_PASSWORD",
            "",
            f"Password of Redis user `{user}` (required; letters, digits, - and _; e.g. "
            "`python3 -c 'import secrets; print(secrets.token_hex(24))'`).",
            active=True,
        )
        for user in ("detector", "triage", "remediator", "escalator", "recorder", "admin")
    ),
    Variable(
        "JARVIS_IR_REDIS_INGEST_PASSWORD",
        "",
        "Password of Redis user `ingest`, which may only XADD to jarvis:alerts (other "
        "systems); empty: the user is off.",
    ),
    Variable(
        "JARVIS_IR_TLS_DIR",
        "./deploy/tls",
        "Folder mounted at /run/jarvis-ir/tls in every service: certificate and key for "
        "JARVIS_HTTP_TLS_CERTFILE / JARVIS_HTTP_TLS_KEYFILE.",
    ),
    Variable(
        "JARVIS_NETWORK",
        "sutazai-network",
        "Docker network of the Jarvis stack that the services join (must exist).",
    ),
    Variable(
        "DOCKER_GID",
        "999",
        "Group id owning /var/run/docker.sock (`stat -c %g /var/run/docker.sock`); "
        "granted to the detector and the remediator.",
    ),
    Variable("JARVIS_ENV_FILE", ".env", "The file whose settings every service receives."),
    Variable("JARVIS_IR_IMAGE", "jarvis-responder:latest", "Image of the five services."),
    Variable(
        "JARVIS_IR_BASE_IMAGE", "python:3.11-slim", "BASE_IMAGE when compose builds the image."
    ),
    Variable("JARVIS_IR_REDIS_IMAGE", "redis:7.2", "Redis image (append-only persistence on)."),
    Variable("JARVIS_IR_POSTGRES_IMAGE", "postgres:16", "PostgreSQL image of the recorder."),
    Variable("JARVIS_IR_REDIS_PORT", "10379", "Loopback port publishing Redis."),
    Variable("JARVIS_IR_POSTGRES_PORT", "10432", "Loopback port publishing PostgreSQL."),
    Variable("JARVIS_IR_DETECTOR_PORTS", "10310-10319", "Loopback ports of detector replicas."),
    Variable("JARVIS_IR_TRIAGE_PORTS", "10320-10329", "Loopback ports of triage replicas."),
    Variable("JARVIS_IR_REMEDIATOR_PORTS", "10330-10339", "Loopback ports of remediator replicas."),
    Variable("JARVIS_IR_ESCALATOR_PORTS", "10340-10349", "Loopback ports of escalator replicas."),
    Variable("JARVIS_IR_RECORDER_PORTS", "10350-10359", "Loopback ports of recorder replicas."),
    Variable("JARVIS_HOSTNET_REDIS_PORT", "16379", "deploy/compose.hostnet.yml: Redis's port."),
    Variable(
        "JARVIS_HOSTNET_POSTGRES_PORT", "16432", "deploy/compose.hostnet.yml: PostgreSQL's port."
    ),
    Variable(
        "JARVIS_HOSTNET_DETECTOR_PORT",
        "16310",
        "deploy/compose.hostnet.yml: detector's port (replicas: the next free of 10).",
    ),
    Variable(
        "JARVIS_HOSTNET_TRIAGE_PORT",
        "16320",
        "deploy/compose.hostnet.yml: triage's port (replicas: the next free of 10).",
    ),
    Variable(
        "JARVIS_HOSTNET_REMEDIATOR_PORT", "16330", "deploy/compose.hostnet.yml: remediator's port."
    ),
    Variable(
        "JARVIS_HOSTNET_ESCALATOR_PORT",
        "16340",
        "deploy/compose.hostnet.yml: escalator's port (replicas: the next free of 10).",
    ),
    Variable(
        "JARVIS_HOSTNET_RECORDER_PORT", "16350", "deploy/compose.hostnet.yml: recorder's port."
    ),
)


def _env_name(name: str, info: FieldInfo, prefix: str) -> str:
    alias = info.validation_alias
    if not prefix and isinstance(alias, AliasChoices):
        first = alias.choices[0]
        if isinstance(first, str):
            return first
    if not prefix and isinstance(alias, str):
        return alias
    return f"{prefix or 'JARVIS_'}{name.upper()}"


def _render(value: Any) -> str:
    if value is None or isinstance(value, (SecretStr, SecretBytes)):
        return ""  # never write a secret's default into an example file
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return json.dumps(
            value if not isinstance(value, (set, frozenset)) else sorted(value), default=str
        )
    if hasattr(value, "value") and not isinstance(value, (int, float, str)):  # an Enum
        return str(value.value)
    return str(value)


def _walk(model: BaseModel, prefix: str, section: str) -> Iterator[tuple[str, Variable]]:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name, None)
        env = _env_name(name, info, prefix)
        if isinstance(value, BaseModel) and isinstance(info.annotation, type):
            yield from _walk(value, f"{env}__", name if not section else f"{section}.{name}")
            continue
        description = (info.description or "").strip()
        if info.is_required():
            description = f"(required) {description}"
        yield section, Variable(env, _render(value), description)


def settings_variables() -> list[tuple[str, Variable]]:
    """(section, variable) for every leaf setting, in the model's order."""
    return list(_walk(Settings.model_construct(), "", ""))


def render() -> str:
    lines = [
        "# Jarvis Responder: every variable docker-compose.yml reads and every setting.",
        "# Generated by scripts/gen_env_example.py: edit that script or shared/settings/,",
        "# then run it again. Copy to .env and uncomment what you change:",
        "#   cp .env.example .env",
        "",
        "# ==== docker-compose.yml ====",
    ]
    for var in COMPOSE_VARIABLES:
        lines.append(f"# {var.description}")
        lines.append(f"{'' if var.active else '# '}{var.name}={var.default}")
    lines += [
        "",
        f"{SETTINGS_MARKER} (shared/settings/; defaults shown) ====",
        "# Compose sets REDIS_URL, DATABASE_URL, JARVIS_HTTP_HOST and JARVIS_HTTP_PORT itself.",
        "# Nested settings are JARVIS_<SECTION>__<FIELD>; lists and mappings are JSON.",
    ]
    current: str | None = None
    for section, var in settings_variables():
        if section != current:
            current = section
            lines += ["", f"# [{section or 'general'}]"]
        if var.description:
            lines.append(f"# {var.description}")
        lines.append(f"# {var.name}={var.default}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not ENV_EXAMPLE.exists() or ENV_EXAMPLE.read_text() != text:
            print(f"{ENV_EXAMPLE} is out of date: run scripts/gen_env_example.py", file=sys.stderr)
            return 1
        return 0
    ENV_EXAMPLE.write_text(text)
    print(f"wrote {ENV_EXAMPLE} ({len(settings_variables())} settings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
