"""Issue #8: the reliability suite (fault matrix, properties, concurrency, leaks, shutdown)."""
