"""What the server says about itself: metrics, Prometheus, logs, traces, dashboard, watches."""
