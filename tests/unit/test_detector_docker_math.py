"""The arithmetic of the Docker probes: `docker stats` percentages, restarts, error lines."""

from __future__ import annotations

import re

import pytest

from services.detector.probes_docker import (
    RestartWindow,
    count_error_lines,
    cpu_percent,
    memory_percent,
    service_for_container,
)


def test_cpu_percent_like_docker_stats() -> None:
    stats = {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000},
            "system_cpu_usage": 20_000_000,
            "online_cpus": 2,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000}, "system_cpu_usage": 10_000_000},
    }
    # 2e6 of 1e7 system ticks on 2 cores = 40 % (100 % = one core).
    assert cpu_percent(stats) == pytest.approx(40.0)
    assert cpu_percent({"cpu_stats": {}, "precpu_stats": {}}) is None
    first_sample = {**stats, "precpu_stats": {"cpu_usage": {"total_usage": 0}}}
    assert cpu_percent(first_sample) is None


def test_memory_percent_excludes_page_cache() -> None:
    stats = {"memory_stats": {"usage": 600, "limit": 1000, "stats": {"inactive_file": 100}}}
    assert memory_percent(stats) == pytest.approx(50.0)
    v1 = {"memory_stats": {"usage": 900, "limit": 1000, "stats": {"total_inactive_file": 0}}}
    assert memory_percent(v1) == pytest.approx(90.0)
    assert memory_percent({"memory_stats": {}}) is None


def test_restarts_are_counted_within_the_window() -> None:
    window = RestartWindow(window_s=60)
    assert window.observe(5, now=0) == 0  # restarts before we looked do not count
    assert window.observe(6, now=10) == 1
    assert window.observe(8, now=50) == 3
    # The restart seen at 10 happened after 0: it may lie inside the window until 10 leaves it.
    assert window.observe(8, now=65) == 3
    assert window.observe(8, now=71) == 2
    assert window.observe(8, now=200) == 0
    assert window.observe(0, now=201) == 0  # re-created container: counter restarted


def test_error_lines_follow_the_runbook_grep() -> None:
    pattern = re.compile(r"(?i)critical|fatal|error")
    text = "ok\nERROR db timeout\nwarning\nFatal: out of memory\nerrors=0 in batch\n"
    count, last = count_error_lines(text, pattern)
    assert count == 3
    assert last == "errors=0 in batch"
    assert count_error_lines("", pattern) == (0, "")


def test_container_service_names() -> None:
    assert service_for_container("sutazai-postgres") == "postgres"
    assert service_for_container("backend") == "backend"
    assert service_for_container("sutazai-ollama", "llm") == "llm"
