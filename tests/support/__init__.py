"""What the tests share: the test database, settings, clients for an application on the
test's transaction, fake providers and routing files, servers and `plume` processes,
factories, a clock, and the checks of Plume's error shapes. The pytest fixtures are in
`tests.support.fixtures`, loaded by tests/conftest.py."""
