"""The fleet: cameras, their identity, state and the limits admins set on them."""
