"""Secure pickup (issue 18): PHI that finds no acceptable TLS route waits behind phigate's
own HTTPS page; the recipient gets a PHI-free notice, proves the address with a one-time
code, reads the message there and may reply once.
"""
