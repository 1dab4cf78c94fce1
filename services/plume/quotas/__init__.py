"""Quotas: limits per organisation and calendar period, reserved before and settled after
each provider call, atomically in PostgreSQL."""
