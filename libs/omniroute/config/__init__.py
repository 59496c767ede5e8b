"""Configuration: the declarative shapes (spec), the in-memory snapshot, and its refresh."""
