"""The dashboard: fleet overview, camera pages and live updates over WebSockets."""
