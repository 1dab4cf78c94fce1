"""Agents: people of an organisation who sign in with ProConnect (OpenID Connect), their
server-side sessions, and the cookie path of authentication (docs/identity.md)."""
