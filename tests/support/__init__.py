"""Helpers shared by the test suite: test apps and real server processes."""
