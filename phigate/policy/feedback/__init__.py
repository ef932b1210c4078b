"""Feedback: bounces (DSN), complaints (ARF) and unsubscribes, read and acted on."""
