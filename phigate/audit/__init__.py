"""The audit trail: the append-only log and its hash-chain verification."""
