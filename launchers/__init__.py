"""Launchers: programs that put the whole system together (the demo). They sit above every
other part, so that nothing in the platform needs to know the device simulator or the
decode workers."""
