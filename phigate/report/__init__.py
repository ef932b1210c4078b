"""The monthly compliance report: what a HIPAA compliance officer files, as counts only."""
