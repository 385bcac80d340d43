"""Triage: classify alerts, group them into incidents, choose the playbook."""
