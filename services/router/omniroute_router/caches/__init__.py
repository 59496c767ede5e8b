"""The answer caches: exact-cache replay, the semantic cache (embedders, Qdrant store)."""
