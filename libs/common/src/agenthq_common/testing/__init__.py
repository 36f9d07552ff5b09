"""Test support for every service (a pytest plugin, loaded by entry point)."""
