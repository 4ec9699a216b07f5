"""The SQLite store-and-forward log (built by the store-and-forward issue)."""
