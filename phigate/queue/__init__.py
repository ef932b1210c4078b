"""The durable, encrypted queue: SQLAlchemy models, the store, migrations."""
