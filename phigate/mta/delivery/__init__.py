"""Outbound delivery: routing, TLS policy (MTA-STS, DANE), the SMTP client, reports."""
