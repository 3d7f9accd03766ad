"""Fixtures of the dashboard's tests."""

from __future__ import annotations

import io
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from PIL import Image

from access.services import assign
from archive.services import record_decoded, store_packet
from fleet.services import provision_device
from mcucoder.bitstream import parse_packet
from tests.support.packets import fake_packet


@pytest.fixture
def operator_client():
    """An operator signed in, assigned one camera that has one decoded frame."""
    tag = uuid.uuid4().hex[:6]
    device = provision_device(f"params-{tag}", name="Params", site="Params site")
    frame = store_packet(device, parse_packet(fake_packet(seq=1, channels=6))).frame
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 90, 160)).save(buf, format="WEBP")
    record_decoded(frame.pk, 6, buf.getvalue(), "image/webp", 2.0)
    operator = get_user_model().objects.create_user(f"params-op-{tag}", password="pw")
    assign(operator, device=device)
    client = Client(raise_request_exception=False)
    client.force_login(operator)
    return client, {"device": device.device_id, "frame": frame.pk}
