"""``python -m mcucoder COMMAND``: see ``mcucoder.cli``."""

from .cli import main

raise SystemExit(main())
