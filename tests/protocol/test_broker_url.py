from __future__ import annotations

import pytest

from protocol.broker import BrokerURL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", BrokerURL("127.0.0.1", 1883)),
        ("mqtt://broker", BrokerURL("broker", 1883)),
        ("broker.local:1884", BrokerURL("broker.local", 1884)),
        ("mqtts://cam-1:s%40cret@b.example", BrokerURL("b.example", 8883, True, "cam-1", "s@cret")),
    ],
)
def test_parse(url: str, expected: BrokerURL) -> None:
    assert BrokerURL.parse(url) == expected


@pytest.mark.parametrize("url", ["http://x:1883", "mqtt://:1883"])
def test_parse_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        BrokerURL.parse(url)


def test_str_hides_the_password() -> None:
    assert str(BrokerURL.parse("mqtts://u:p@h:1")) == "mqtts://u@h:1"
