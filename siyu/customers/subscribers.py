"""Behaviour the customer core hangs on the event log."""

from siyu.customers.lifecycle import apply_lifecycle_rules

__all__ = ["apply_lifecycle_rules"]
