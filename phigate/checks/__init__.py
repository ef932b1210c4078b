"""Checks of a configuration and of what DNS publishes for it (``phigate check-config``)."""
