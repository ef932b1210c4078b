"""The HTTP side: one-click unsubscribe, /metrics and /healthz."""
