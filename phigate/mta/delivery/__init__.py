"""Mail out: the scheduler (qmgr), throttles, retries, the SMTP client, routing, TLS policy
(MTA-STS, DANE), outcomes, DKIM, per-recipient decoration, DSNs and reports."""
