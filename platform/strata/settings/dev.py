"""Development and demo settings: the embedded default. DEBUG is off unless DEBUG=1 is set:
its error pages show settings, among them the database and broker passwords."""

from .base import *  # noqa: F403
