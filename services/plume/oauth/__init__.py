"""OAuth2 client credentials (RFC 6749, section 4.4): a tenant's machines authenticate as
clients and call the API with short-lived access tokens (docs/identity.md)."""
