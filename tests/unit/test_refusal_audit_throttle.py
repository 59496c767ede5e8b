"""Audit events for secrets that name no key are throttled per address (anyone can send them);
refusals of our own keys are never throttled (tests/e2e/test_refusal_audit.py)."""

from __future__ import annotations

from omniroute_edge.refusals import PerAddress


def test_one_event_per_address_per_window() -> None:
    throttle = PerAddress(window_s=60.0, max_addresses=3)
    assert throttle.admit("198.51.100.1", 0.0) is True
    assert throttle.admit("198.51.100.1", 59.9) is False
    assert throttle.admit("198.51.100.2", 59.9) is True      # another address: its own window
    assert throttle.admit("198.51.100.1", 60.0) is True      # the window passed
    assert throttle.admit("198.51.100.3", 61.0) is True
    # Full (3 addresses): emptied, so memory stays bounded; the next one is admitted.
    assert throttle.admit("198.51.100.4", 62.0) is True
    assert throttle.admit("198.51.100.2", 62.0) is True
