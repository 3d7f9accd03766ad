"""Who may see and change what: roles, per-camera scoping, login rate limiting."""
