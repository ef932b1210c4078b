"""Mail in: the aiosmtpd submission server, AUTH, and the feedback listener."""
