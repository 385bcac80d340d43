""".env.example lists every setting of shared/settings/ and every compose variable."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
_ASSIGNMENT = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
_COMPOSE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_env_example", ROOT / "scripts/gen_env_example.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _sections() -> tuple[set[str], set[str]]:
    text = (ROOT / ".env.example").read_text()
    compose_part, _, settings_part = text.partition("# ==== Settings of the services")
    assert settings_part, ".env.example has no settings section"
    return set(_ASSIGNMENT.findall(compose_part)), set(_ASSIGNMENT.findall(settings_part))


def test_every_setting_is_listed(generator: ModuleType) -> None:
    _, listed = _sections()
    names = {var.name for _, var in generator.settings_variables()}
    missing = names - listed
    assert not missing, f"run scripts/gen_env_example.py: .env.example lacks {sorted(missing)}"
    stale = listed - names
    assert not stale, f".env.example lists settings that do not exist: {sorted(stale)}"


def test_names_are_the_environment_names_settings_read(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.settings import load_settings

    variables = [var for _, var in generator.settings_variables()]
    assert {"REDIS_URL", "DATABASE_URL", "JARVIS_HTTP_PORT"} <= {v.name for v in variables}
    nested = next(v for v in variables if "__" in v.name and v.default.isdigit())
    monkeypatch.setenv(nested.name, str(int(nested.default) + 1))
    monkeypatch.setenv("JARVIS_HTTP_PORT", "10999")
    settings = load_settings()
    section, field = nested.name.removeprefix("JARVIS_").lower().split("__", 1)
    assert getattr(getattr(settings, section), field) == int(nested.default) + 1
    assert settings.http_port == 10999


def test_defaults_written_are_the_model_defaults(generator: ModuleType) -> None:
    by_name = {var.name: var for _, var in generator.settings_variables()}
    assert by_name["JARVIS_HTTP_PORT"].default == "10300"
    assert by_name["JARVIS_BACKEND_URL"].default == "http://127.0.0.1:10010"
    assert by_name["JARVIS_REMEDIATOR__ENABLED"].default == "false"
    assert by_name["REDIS_URL"].default == ""


def test_every_compose_variable_is_listed(generator: ModuleType) -> None:
    compose_listed, _ = _sections()
    used = set()
    for path in ("docker-compose.yml", "deploy/compose.hostnet.yml"):
        used |= set(_COMPOSE_VAR.findall((ROOT / path).read_text()))
    # Settings passed straight through are listed in the settings section.
    settings_names = {var.name for _, var in generator.settings_variables()}
    missing = used - compose_listed - settings_names
    assert not missing, f"add to COMPOSE_VARIABLES in scripts/gen_env_example.py: {missing}"
    declared = {var.name for var in generator.COMPOSE_VARIABLES}
    assert declared == compose_listed
    unused = declared - used
    assert not unused, f"COMPOSE_VARIABLES not used by any compose file: {unused}"


def test_generator_output_is_committed(generator: ModuleType) -> None:
    assert (ROOT / ".env.example").read_text() == generator.render(), (
        "run scripts/gen_env_example.py"
    )


def test_generator_handles_sections_mappings_enums_and_secrets(generator: ModuleType) -> None:
    from enum import Enum

    from pydantic import BaseModel, Field, SecretStr

    class Mode(Enum):
        FAST = "fast"

    class Channel(BaseModel):
        url: str = "http://127.0.0.1:9"

    class Section(BaseModel):
        count: int = Field(default=3, description="How many.")
        token: SecretStr = SecretStr("do-not-print")
        routes: dict[str, int] = Field(default_factory=lambda: {"p0": 1})
        mode: Mode = Mode.FAST
        channel: Channel = Field(default_factory=Channel)

    class Top(BaseModel):
        name: str = "x"
        section: Section = Field(default_factory=Section)

    rows = {var.name: (section, var) for section, var in generator._walk(Top(), "", "")}
    assert rows["JARVIS_NAME"][1].default == "x"
    assert rows["JARVIS_SECTION__COUNT"] == (
        "section",
        generator.Variable("JARVIS_SECTION__COUNT", "3", "How many."),
    )
    assert rows["JARVIS_SECTION__TOKEN"][1].default == ""
    assert rows["JARVIS_SECTION__ROUTES"][1].default == '{"p0": 1}'
    assert rows["JARVIS_SECTION__MODE"][1].default == "fast"
    assert rows["JARVIS_SECTION__CHANNEL__URL"][0] == "section.channel"
