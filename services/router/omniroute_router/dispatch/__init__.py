"""Calling executors: per target and account, with fallback; the stateless mode."""
