"""The operator console driven in headless Chromium against `jarvis-ir up` (a subprocess on
free ports, embedded Redis, SQLite), as an on-call engineer uses it: incidents sorted by
severity with their countdowns and escalation, acknowledge, note, approve a dangerous
action, resolve, and a silence made on the page keeping a matching alert from opening an
incident.

Set JARVIS_SCREENSHOTS=docs/img to refresh the screenshots the README shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync

from shared.events import Level, Severity, SeverityAssigned, utcnow
from tests.e2e.browser import chromium
from tests.e2e.test_up import embedded_redis_url, start_up

pytestmark = pytest.mark.e2e

TOKEN = "console-e2e-token"


class Up:
    """`jarvis-ir up` and a way to reach it as another system would."""

    def __init__(self, url: str, redis_url: str, log: Path) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)
        self.redis = redis_sync.Redis.from_url(redis_url)
        self.log = log

    def alert(self, **fields: Any) -> None:
        answer = self.http.post(
            "/api/v1/alerts", json=fields, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 202, answer.text

    def incidents(self, service: str) -> list[dict[str, Any]]:
        return list(self.http.get("/api/v1/incidents", params={"service": service}).json())

    def until(self, check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.2)
        pytest.fail(f"{what} not within {timeout}s\n{self.log.read_text()[-3000:]}")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    settings = {
        "JARVIS_API_TOKEN": TOKEN,
        "JARVIS_LOG_LEVEL": "WARNING",
        "JARVIS_DETECTOR__PROBES_ENABLED": "false",
        "JARVIS_RECORDER__STREAM_POLL_S": "0.3",
        # Only the dangerous prune runs for real, and it can only reach an engine that does
        # not exist: the approval is real, nothing on this machine is pruned.
        "JARVIS_REMEDIATOR__ENABLED": "true",
        "JARVIS_REMEDIATOR__ENABLED_ACTIONS": json.dumps(["docker.system_prune"]),
        "JARVIS_REMEDIATOR__DOCKER_URL": f"unix://{tmp_path / 'no-docker.sock'}",
    }
    proc, url, redis_port, log = start_up(tmp_path, settings)
    system = Up(url, embedded_redis_url(tmp_path, redis_port), log)
    try:
        yield system
    finally:
        system.http.close()
        system.redis.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _screenshot_on_failure(driver: Any, path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        driver.save_screenshot(str(path))
        print(f"screenshot of the failure: {path}")
        raise


def _overdue_incident(up: Up) -> str:
    """A P1 opened two hours ago, as triage would have announced it (only the announcement:
    its alert would join the backend's incident, backend depends on neo4j): past its
    response time, and escalated by the escalator as the runbook's matrix says."""
    incident, opened = str(uuid.uuid4()), utcnow() - timedelta(hours=2)
    opening = SeverityAssigned(
        producer="triage",
        incident_id=incident,
        correlation_id=incident,
        severity=Severity.P1,
        impact=Level.HIGH,
        urgency=Level.LOW,
        opened_at=opened,
        response_due_at=opened + timedelta(hours=1),
        occurred_at=opened,
        reason="rule: database failure",
        fingerprint="neo4j-bolt",
        service="neo4j",
        title="neo4j unreachable for two hours",
        services=["neo4j"],
    )
    up.redis.xadd("jarvis:severity", {"__data__": opening.to_json()})
    return incident


def test_an_operator_works_incidents_approvals_and_silences_from_the_page(up: Up) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    shots = Path(os.environ.get("JARVIS_SCREENSHOTS") or up.log.parent)
    shots.mkdir(parents=True, exist_ok=True)

    # Alerts arrive, the P3 last (the newest): the page still shows the P0 on top.
    up.alert(service="backend", check="memory", summary="backend memory usage above 90%",
             impact="high", urgency="high")  # fmt: skip
    up.until(lambda: up.incidents("backend"), "the P0 incident")
    up.alert(service="agents", check="heartbeat", summary="single agent failure",
             impact="medium", urgency="low")  # fmt: skip
    up.until(lambda: up.incidents("agents"), "the P2 incident")
    up.alert(service="frontend", check="ui", summary="UI glitch on the settings page",
             impact="low", urgency="low")  # fmt: skip
    overdue = _overdue_incident(up)
    p0 = up.incidents("backend")[0]
    up.until(lambda: up.incidents("frontend"), "the P3 incident")

    with chromium() as driver, _screenshot_on_failure(driver, up.log.parent / "failure.png"):
        wait = WebDriverWait(driver, 30, ignored_exceptions=[StaleElementReferenceException])

        def texts(css: str) -> list[str]:
            return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]

        def attrs(css: str, name: str) -> list[str]:
            return [e.get_attribute(name) or "" for e in driver.find_elements(By.CSS_SELECTOR, css)]

        driver.get(up.url + "/")
        wait.until(lambda d: d.find_element(By.ID, "live").text == "live")
        wait.until(lambda d: len(attrs("#incidents > li", "data-id")) == 4)
        assert texts("#incidents > li .sev") == ["P0", "P1", "P2", "P3"]
        assert texts("#counts li .n") == ["1", "1", "1", "1"]

        # Countdown to the runbook's response time; red once overdue; escalation state.
        top = "#incidents > li:first-child"
        assert "respond within 14m" in driver.find_element(By.CSS_SELECTOR, top + " .due").text
        late = f'#incidents li[data-id="{overdue}"]'
        wait.until(lambda d: "overdue by 1h" in d.find_element(By.CSS_SELECTOR, late).text)
        assert "overdue" in (
            driver.find_element(By.CSS_SELECTOR, late + " .due").get_attribute("class") or ""
        )
        wait.until(
            lambda d: "level 2" in d.find_element(By.CSS_SELECTOR, late + " .escalation").text
        )

        # The pending dangerous action of the P0's playbook, with what exactly will run.
        pending = "#approvals li[data-action-id]"
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, pending))
        assert "docker system prune -f" in texts(pending + " code")[0]
        driver.save_screenshot(str(shots / "console-overview.png"))

        # Name and token, once for the browser session.
        driver.find_element(By.ID, "operator").send_keys("alice")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "token-save").click()
        wait.until(lambda d: "token set" in d.find_element(By.ID, "token-state").text)

        # Acknowledge the P0 and write a note: both appear on the live timeline.
        driver.find_element(By.CSS_SELECTOR, f'#incidents li[data-id="{p0["id"]}"]').click()
        wait.until(
            lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline tr[data-type="SeverityAssigned"]')
        )
        driver.find_element(By.ID, "ack").click()
        acked = '#timeline tr[data-type="IncidentAcknowledged"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, acked))
        assert texts(acked + " td")[1:] == ["Acknowledged", "", "alice"]
        wait.until(lambda d: "responded in" in d.find_element(By.CSS_SELECTOR, top + " .due").text)
        driver.find_element(By.ID, "note-text").send_keys("<i>memory</i> graphs checked")
        driver.find_element(By.ID, "add-note").click()
        note = '#timeline tr[data-type="NoteAdded"]'
        wait.until(lambda d: "<i>memory</i> graphs checked" in texts(note + " td:nth-child(3)"))

        # Approve the prune: the remediator runs it (and fails: there is no engine here).
        driver.find_element(By.CSS_SELECTOR, pending + " button.approve").click()
        approved = '#timeline tr[data-type="ActionApproved"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, approved))
        assert texts(approved + " td")[3] == "alice"
        wait.until(
            lambda d: any(
                "approved by alice" in t
                for t in texts('#timeline tr[data-type="ActionCompleted"] td:nth-child(3)')
            )
        )
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, pending))
        phases = "#phases li.reached"
        wait.until(lambda d: attrs(phases, "data-phase")[:2] == ["detected", "triaged"])
        driver.execute_script("document.querySelector('main').scrollTop = 1e6")
        driver.save_screenshot(str(shots / "console-incident.png"))

        # Resolve the P3 with a note; it moves to the resolved list.
        p3 = up.incidents("frontend")[0]["id"]
        driver.find_element(By.CSS_SELECTOR, f'#incidents li[data-id="{p3}"]').click()
        driver.find_element(By.ID, "resolve-note").send_keys("CSS fix deployed")
        driver.find_element(By.ID, "resolve").click()
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, f'#incidents li[data-id="{p3}"]'))
        driver.find_element(By.ID, "filter-resolved").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#incidents li[data-id="{p3}"]'))
        driver.find_element(By.ID, "filter-open").click()

        # A silence made on the page keeps a matching alert from opening an incident.
        driver.find_element(By.CSS_SELECTOR, "#silence-new summary").click()
        driver.find_element(By.ID, "silence-service").send_keys("ollama")
        driver.find_element(By.ID, "silence-comment").send_keys("model upgrade")
        driver.find_element(By.ID, "silence-create").click()
        made = '#silences li[data-state="active"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, made))
        silence_id = attrs(made, "data-silence-id")[0]
        up.alert(service="ollama", check="models", summary="No models available",
                 impact="high", urgency="low")  # fmt: skip

        def silenced() -> bool:
            detail = up.http.get(f"/api/v1/silences/{silence_id}").json()
            return "AlertSilenced" in [e["event_type"] for e in detail["history"]]

        up.until(silenced, "the alert silenced")
        assert up.incidents("ollama") == []
        assert texts(made + " code")[0] == "service=ollama"
        # Its audit trail on the page: "silenced by <id>".
        driver.find_element(By.CSS_SELECTOR, made + " b").click()
        quiet = '#timeline tr[data-type="AlertSilenced"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, quiet))
        assert texts(quiet + " td")[2] == f"ollama/models silenced by {silence_id}"
        driver.save_screenshot(str(shots / "console-silence.png"))

        # The postmortem opens as a page.
        driver.get(f"{up.url}/api/v1/incidents/{p0['id']}/postmortem")
        heading = driver.find_element(By.TAG_NAME, "h1").text
        assert heading == f"Post-Incident Review: {p0['id']}"
