"""Who is calling: API keys (minted, hashed, revoked) and the typed dependencies that turn a
key into a Principal with its tenant scope."""
