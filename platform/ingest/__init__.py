"""Ingest: the MQTT consumer that turns device messages into archive rows and decode jobs."""
