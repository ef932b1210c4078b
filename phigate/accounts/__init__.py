"""User accounts: the store of submission users and their password hashes."""
