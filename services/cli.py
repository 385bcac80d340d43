"""`jarvis-ir`: run the whole system (`up`) or one service (`serve <name>`), print a
postmortem (`postmortem ID`), or run a drill (`drill <scenario>`)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence

import uvicorn

from services.detector.main import build as build_detector
from services.escalator.main import build as build_escalator
from services.recorder import drill_cli, postmortem_cli
from services.recorder.drills import SCENARIOS
from services.recorder.main import build as build_recorder
from services.remediator.main import build as build_remediator
from services.triage.main import build as build_triage
from shared.access import check_exposure
from shared.asyncapi import asyncapi_document
from shared.embedded_redis import EmbeddedRedis
from shared.redis_client import RedisLocation
from shared.runtime import Runtime, Service, build_app, create_runtime
from shared.settings import ConfigError, Settings, load_settings

__all__ = ["SERVICES", "main"]

SERVICES: dict[str, Callable[[Runtime], Service]] = {
    "detector": build_detector,
    "triage": build_triage,
    "remediator": build_remediator,
    "escalator": build_escalator,
    "recorder": build_recorder,
}

log = logging.getLogger("jarvis_ir")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jarvis-ir", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("asyncapi", help="print the event streams as an AsyncAPI 3.0 document")
    for name, help_text in (
        ("up", "all five services in one process (embedded Redis when REDIS_URL is unset)"),
        ("serve", "one service, as a container runs it"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        if name == "serve":
            cmd.add_argument("service", choices=sorted(SERVICES))
        cmd.add_argument("--config", help="configuration file (TOML, YAML or JSON)")
        cmd.add_argument("--port", type=int, help="HTTP port (JARVIS_HTTP_PORT)")
        cmd.add_argument("--host", help="HTTP address (JARVIS_HTTP_HOST)")
    postmortem = sub.add_parser("postmortem", help="print an incident's postmortem (Markdown)")
    postmortem.add_argument("incident_id", help="the incident's id")
    postmortem.add_argument("--config", help="configuration file (reads DATABASE_URL)")
    postmortem.add_argument("--url", help="ask a running recorder, e.g. http://127.0.0.1:10300")
    drill = sub.add_parser("drill", help="inject a runbook failure on purpose and time the loop")
    drill.add_argument("scenario", choices=list(SCENARIOS))
    drill.add_argument("--config", help="configuration file (drills, addresses, token)")
    drill.add_argument("--url", help="the running responder (default: JARVIS_HTTP_HOST/PORT)")
    drill.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    drill.add_argument("--by", default="operator", help="who runs the drill")
    drill.add_argument("--json", action="store_true", help="print the report as JSON")
    drill.add_argument("--timeout", type=float, help="seconds to wait (drills.timeout_s)")
    return parser


def bind_first_free(host: str, port: int, span: int) -> socket.socket:
    """A listening socket on the first port of `port` … `port + span - 1` that no
    other process holds (replicas of one service on the host's network each get one)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    for candidate in range(port, port + span):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
            # Listening is what makes a port this process's (two sockets with SO_REUSEADDR
            # may both bind one port; only one may listen on it).
            sock.listen(2048)
        except OSError:
            sock.close()
            continue
        return sock
    raise OSError(f"no free port in {port}-{port + span - 1} on {host}")


def _serve(settings: Settings, names: Sequence[str], *, embedded_ok: bool) -> int:
    embedded: EmbeddedRedis | None = None
    location = settings.redis_location
    if location is None:
        if not embedded_ok:
            log.error(
                "REDIS_URL (or REDIS_SENTINELS) is required for `serve` "
                "(only `up` embeds a Redis server)"
            )
            return 2
        embedded = EmbeddedRedis(settings.data_dir, settings.embedded_redis_port)
        try:
            location = RedisLocation(url=embedded.start())
        except RuntimeError as exc:  # port taken, no binary, …: say so, no traceback
            print(f"jarvis-ir: embedded Redis: {exc}", file=sys.stderr)
            return 2
        log.info(
            "embedded redis-server on 127.0.0.1:%d (data in %s)", embedded.port, embedded.data_dir
        )
    else:
        log.info("Redis: %s", location.describe())
    try:
        runtime = create_runtime(settings, location)
        services = [SERVICES[name](runtime) for name in names]
        app = build_app(runtime, services, freeze_after_start=True)
        tls = settings.http_tls_certfile, settings.http_tls_keyfile
        config = uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=15,
            # HTTPS when a certificate is configured (PagerDuty's client speaks nothing else).
            ssl_certfile=str(tls[0]) if tls[0] else None,
            ssl_keyfile=str(tls[1]) if tls[1] else None,
        )
        # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; with these no-op
        # handlers that returns here, so the embedded Redis is stopped and we exit 0.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        # What the process builds until its services have started (modules, models,
        # settings, migrations) is kept out of the collector's full passes once they have:
        # build_app(freeze_after_start=True), after collecting the garbage of start-up.
        sockets = None
        if settings.http_port_span > 1:
            sock = bind_first_free(settings.http_host, settings.http_port, settings.http_port_span)
            port = sock.getsockname()[1]
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            (settings.data_dir / "http.port").write_text(f"{port}\n")
            log.warning("serving on port %d (first free of the span)", port)
            sockets = [sock]
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        if embedded:
            embedded.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "asyncapi":
        print(json.dumps(asyncapi_document(), indent=2))
        return 0
    if args.command == "postmortem":
        return postmortem_cli.run(args.incident_id, config=args.config, url=args.url)
    if args.command == "drill":
        return drill_cli.run(
            args.scenario,
            config=args.config,
            url=args.url,
            yes=args.yes,
            by=args.by,
            as_json=args.json,
            timeout_s=args.timeout,
        )
    overrides = {
        key: value
        for key, value in (("http_port", args.port), ("http_host", args.host))
        if value is not None
    }
    try:
        settings = load_settings(args.config, **overrides)
        check_exposure(settings)
    except ConfigError as exc:
        print(f"jarvis-ir: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "up":
        return _serve(settings, list(SERVICES), embedded_ok=True)
    return _serve(settings, [args.service], embedded_ok=False)


if __name__ == "__main__":
    sys.exit(main())
