"""``/frames/<id>/preview``: a thumbnail from the latent, within the user's scope."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from PIL import Image

from access.services import assign
from archive.decoding import codec_for
from archive.models import DecodedImage
from archive.services import store_packet
from fleet.services import provision_device
from mcucoder import registry
from mcucoder.bitstream import parse_packet

pytestmark = pytest.mark.django_db


def test_preview_of_a_visible_frame_without_decoding_it():
    tag = uuid.uuid4().hex[:6]
    codec = codec_for(registry.default_model_id())
    y, x = np.mgrid[0:96, 0:128]
    img = np.stack([x * 2, y * 2, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    mine, other = provision_device(f"prev-a-{tag}"), provision_device(f"prev-b-{tag}")
    frames = [
        store_packet(d, parse_packet(codec.encode(img, channels=6, seq=1))).frame
        for d in (mine, other)
    ]
    operator = get_user_model().objects.create_user(f"prev-op-{tag}")
    assign(operator, device=mine)
    client = Client()
    client.force_login(operator)

    response = client.get(f"/frames/{frames[0].pk}/preview")
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(response.content)).size == (32, 24)
    assert not DecodedImage.objects.exists()  # no decoder ran, nothing was cached
    assert client.get(f"/frames/{frames[1].pk}/preview").status_code == 404  # not my camera
    assert Client().get(f"/frames/{frames[0].pk}/preview").status_code == 302  # sign in first
