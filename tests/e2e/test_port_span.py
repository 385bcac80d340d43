"""Replicas of one service on one network (host networking, as in the compose proof,
issue 16): with JARVIS_HTTP_PORT_SPAN each serves on the first free port of the span, says
which in <data dir>/http.port, and the container healthcheck finds it there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared.cluster import LocalCluster, ServiceProcess, wait_until
from shared.embedded_redis import free_port

pytestmark = pytest.mark.e2e


def test_two_replicas_of_one_span_serve_on_their_own_ports(tmp_path: Path) -> None:
    base = free_port()
    with LocalCluster(tmp_path / "cluster") as cluster:
        replicas = []
        for n in range(2):
            data_dir = tmp_path / f"replica-{n}"
            data_dir.mkdir()
            replica = ServiceProcess(
                name="triage",
                port=base,
                env={
                    **cluster.env(),
                    "JARVIS_DATA_DIR": str(data_dir),
                    "JARVIS_HTTP_PORT": str(base),
                    "JARVIS_HTTP_PORT_SPAN": "3",
                },
                log_path=tmp_path / f"triage-{n}.log",
            )
            cluster.services[f"triage-{n}"] = replica
            replica.start()
            port_file = data_dir / "http.port"
            written = wait_until(lambda f=port_file: f.exists() and f.read_text(), 20, "port file")
            replica.port = int(written)
            replicas.append(replica)
        assert [r.port for r in replicas] == [base, base + 1]
        for replica in replicas:
            assert httpx.get(f"{replica.url}/health", timeout=5).status_code == 200
            check = subprocess.run(
                [sys.executable, "-m", "services.healthcheck"],
                env=replica.env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert check.returncode == 0, check.stderr
