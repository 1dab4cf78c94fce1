"""A provider-backed request as one unit of work: reserved before the provider is called,
settled exactly once after, whatever happens."""
