"""SMTP both ways: submission server, delivery client, DKIM, DSNs, feedback listener."""
