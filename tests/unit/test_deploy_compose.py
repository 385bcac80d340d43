"""docker-compose.yml, its host-network override and deploy/Dockerfile, read as data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import SERVICES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"detector", "triage", "remediator", "escalator", "recorder"}
SOCKET = "/var/run/docker.sock"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*)|:?\?[^}]*)?\}")


def _load(path: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / path).read_text())
    assert isinstance(data, dict)
    return data


def _defaults(text: str) -> str:
    """Substitute ${VAR:-default} with its default, as compose does with VAR unset."""
    return _VAR.sub(lambda m: m.group(2) or "", text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load("docker-compose.yml")


@pytest.fixture(scope="module")
def hostnet() -> dict[str, Any]:
    return _load("deploy/compose.hostnet.yml")


def test_services_are_the_five_plus_redis_and_postgres(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == APP_SERVICES | {"redis", "postgres"}
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["command"] == ["serve", name]
        assert name in SERVICES
        assert "build" in service
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"


def test_every_service_can_be_scaled(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "container_name" not in service, name
        for port in service.get("ports", []):
            host_port = _defaults(port).split(":")[1]
            if name in APP_SERVICES:  # a range: each replica takes a free port of it
                low, high = (int(p) for p in host_port.split("-"))
                assert high - low >= 3, (name, port)


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    published = [
        (name, port) for name, s in compose["services"].items() for port in s.get("ports", [])
    ]
    assert published
    for name, port in published:
        assert isinstance(port, str), (name, port)
        assert port.startswith("127.0.0.1:"), (name, port)
    host_ports = [_defaults(p).split(":")[1] for _, p in published]
    assert len(host_ports) == len(set(host_ports))


def test_docker_socket_only_in_remediator_and_detector(compose: dict[str, Any]) -> None:
    with_socket = {
        name
        for name, service in compose["services"].items()
        for volume in service.get("volumes", [])
        if SOCKET in str(volume)
    }
    assert with_socket == {"remediator", "detector"}
    for name in with_socket:  # the non-root user needs the socket's group
        assert compose["services"][name]["group_add"]


def test_healthchecks_and_restart_policies_everywhere(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service["restart"] in {"always", "unless-stopped"}, name
        test = service["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}, name
        assert len(test) > 1, name
    app_check = compose["services"]["triage"]["healthcheck"]["test"]
    # /health on JARVIS_HTTP_PORT, over HTTPS with the token when those are set.
    assert app_check == ["CMD", "python3", "-m", "services.healthcheck"]


def test_redis_is_append_only_with_a_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(str(v).endswith(":/data") for v in redis["volumes"])


def test_services_wait_for_their_stores(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
    recorder = compose["services"]["recorder"]
    assert recorder["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert recorder["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert (
        "${JARVIS_IR_POSTGRES_PASSWORD"
        in compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    )


def test_services_join_the_configurable_jarvis_network(compose: dict[str, Any]) -> None:
    jarvis = compose["networks"]["jarvis"]
    assert jarvis["external"] is True
    assert jarvis["name"].startswith("${JARVIS_NETWORK:-")
    for name in APP_SERVICES:
        assert set(compose["services"][name]["networks"]) == {"default", "jarvis"}
    for store in ("redis", "postgres"):  # never on the Jarvis network
        assert set(compose["services"][store]["networks"]) == {"default"}
    aliases = {
        alias
        for store in ("redis", "postgres")
        for alias in compose["services"][store]["networks"]["default"]["aliases"]
    }
    env = compose["services"]["recorder"]["environment"]
    assert any(alias in env["REDIS_URL"] for alias in aliases)
    assert any(alias in env["DATABASE_URL"] for alias in aliases)


def test_hostnet_override_puts_everything_on_loopback(
    compose: dict[str, Any], hostnet: dict[str, Any]
) -> None:
    services = hostnet["services"]
    assert set(services) == set(compose["services"])
    assert all(s["network_mode"] == "host" for s in services.values())
    ports = []
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["JARVIS_HTTP_HOST"] == "127.0.0.1"
        assert "127.0.0.1" in env["REDIS_URL"]
        ports.append(_defaults(env["JARVIS_HTTP_PORT"]))
    assert len(set(ports)) == len(APP_SERVICES)
    redis = [_defaults(str(a)) for a in services["redis"]["command"]]
    assert redis[redis.index("--bind") + 1] == "127.0.0.1"
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert "listen_addresses=127.0.0.1" in services["postgres"]["command"]
    assert "127.0.0.1" in services["recorder"]["environment"]["DATABASE_URL"]


def test_dockerfile_builds_one_non_root_image_with_a_healthcheck() -> None:
    text = (ROOT / "deploy/Dockerfile").read_text().replace("\\\n", " ")  # join continuations
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    assert lines[first] == "ARG BASE_IMAGE=python:3.11-slim"
    assert "FROM ${BASE_IMAGE}" in lines
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}
    assert any(line.startswith("HEALTHCHECK") and "services.healthcheck" in line for line in lines)
    assert 'ENTRYPOINT ["jarvis-ir"]' in lines


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = (ROOT / ".dockerignore").read_text().split()
    assert patterns[patterns.index("*") :][:1] == ["*"]  # everything excluded first
    assert {"!shared/", "!services/", "!pyproject.toml"} <= set(patterns)


def test_each_service_has_its_own_redis_user_and_the_secrets_it_needs_only(
    compose: dict[str, Any], hostnet: dict[str, Any]
) -> None:
    """Issue 18, finding 4: Redis had no password; anyone who could XADD could approve."""
    redis = compose["services"]["redis"]
    assert redis["entrypoint"] == ["sh", "/etc/jarvis-ir/redis/start.sh"]
    assert "./deploy/redis:/etc/jarvis-ir/redis:ro" in redis["volumes"]
    template = (ROOT / "deploy/redis/users.acl.template").read_text()
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        password = f"${{JARVIS_IR_REDIS_{name.upper()}_PASSWORD}}"
        assert env["REDIS_URL"].startswith(f"redis://{name}:{password}@"), name
        assert hostnet["services"][name]["environment"]["REDIS_URL"].startswith(
            f"redis://{name}:{password}@127.0.0.1:"
        )
        assert f"JARVIS_IR_REDIS_{name.upper()}_PASSWORD" in redis["environment"]
        assert f"user {name} on >${{JARVIS_IR_REDIS_{name.upper()}_PASSWORD}}" in template
        assert env["JARVIS_ENVELOPE_KEY"].startswith("${JARVIS_ENVELOPE_KEY:?")
        assert env["JARVIS_API_TOKEN"].startswith("${JARVIS_API_TOKEN:?")
    with_approval_key = {
        name
        for name in APP_SERVICES
        if "JARVIS_APPROVAL_KEY" in compose["services"][name]["environment"]
    }
    assert with_approval_key == {"recorder", "remediator"}
    assert "user default on nopass resetkeys resetchannels -@all +ping" in template


def test_every_service_can_serve_tls_from_the_mounted_folder(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        volumes = compose["services"][name]["volumes"]
        assert any(str(v).endswith(":/run/jarvis-ir/tls:ro") for v in volumes), name


def test_hostnet_replicas_each_get_a_port_of_their_service_span(hostnet: dict[str, Any]) -> None:
    """Issue 16: the compose proof scales detector=2 triage=3 escalator=2 on the host's
    network; each replica serves on the first free port of its service's span."""
    spans = {}
    for name in APP_SERVICES:
        env = hostnet["services"][name]["environment"]
        port = int(_defaults(env["JARVIS_HTTP_PORT"]))
        spans[name] = range(port, port + int(env.get("JARVIS_HTTP_PORT_SPAN", "1")))
    assert {name: len(span) >= 3 for name, span in spans.items()} == {
        name: name in ("detector", "triage", "escalator") for name in APP_SERVICES
    }
    every = [port for span in spans.values() for port in span]
    assert len(every) == len(set(every))  # no two services share a port


def test_replicas_of_one_span_bind_different_ports_and_report_them() -> None:
    import socket

    from services.cli import bind_first_free

    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
            return True

    probe = socket.socket()
    for _ in range(50):  # a port whose next two are free too (other tests hold ports)
        probe.close()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
        if base < 65534 and free(base + 1) and free(base + 2):
            break
    with probe:  # `base` is taken: the first replica skips it
        first = bind_first_free("127.0.0.1", base, 3)
        second = bind_first_free("127.0.0.1", base, 3)
        try:
            ports = [first.getsockname()[1], second.getsockname()[1]]
            assert ports == [base + 1, base + 2]
            with pytest.raises(OSError, match="no free port"):
                bind_first_free("127.0.0.1", base, 1)
        finally:
            first.close()
            second.close()
