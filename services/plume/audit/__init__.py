"""The audit trail: who asked the machine for what, who validated it, who changed which
credential — a tamper-evident hash chain per organisation (see docs/audit.md)."""
