"""HTTP plumbing shared by every domain: the request session, middleware, validation
messages, pagination, error handlers and the health probes."""
