"""Message classification, consent, suppression and the ordered rule engine."""
