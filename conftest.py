"""Fixtures shared by every test folder (tests/ and the per-app tests in platform/)."""

pytest_plugins = ["tests.support.processes"]
