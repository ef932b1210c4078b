"""What operators watch: Prometheus metrics, structured logs, sd_notify."""
