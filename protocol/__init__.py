"""The device–platform contract: MQTT topics, broker URLs and the JSON payloads.

The one definition that firmware, the device simulator, the platform and the benchmarks
share (``docs/mqtt.md``). It holds no Django, no MQTT session logic and no simulator: it
depends on the codec alone (the tier range is the codec's channel count).
"""
