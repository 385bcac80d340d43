"""Remediator: carries out containment and recovery actions, safely."""
