"""Usage accounting: the record of every provider-backed request, and reports on it."""
