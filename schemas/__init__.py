"""Database registry, schema introspection, the SQL guard and the read-only preview."""
