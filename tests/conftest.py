"""Shared fixtures: Pulumi cloud mocks and the real llama.cpp server (tests/support)."""

pytest_plugins = ["tests.support.pulumi_mocks", "tests.support.llama_server"]
