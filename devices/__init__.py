"""Simulated MCU cameras and the fleet runner (the device side of the MQTT contract)."""
