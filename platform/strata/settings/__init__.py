"""Settings, split by environment: ``dev`` (default), ``test`` and ``prod``."""
