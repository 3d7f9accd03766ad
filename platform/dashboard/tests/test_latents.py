"""The latent channel maps of a real encoded frame."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from PIL import Image

from archive.services import store_packet
from dashboard.latents import COLUMNS, GAP, LABEL, SCALE, latent_maps
from fleet.services import provision_device
from mcucoder.bitstream import parse_packet

pytestmark = pytest.mark.django_db


def test_latent_maps_of_a_frame_with_five_layers():
    from mcucoder.codec import Codec

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    packet = Codec.load(encoder="float").encode(image, channels=5, seq=1)
    device = provision_device("latent-cam")
    frame = store_packet(device, parse_packet(packet)).frame

    maps = latent_maps(frame)
    assert maps.shape == (12, 8, 12)
    assert np.any(maps[:5]) and not np.any(maps[5:])  # only the layers received

    admin = get_user_model().objects.create_user("latent-admin", is_staff=True)
    client = Client()
    client.force_login(admin)
    response = client.get(f"/frames/{frame.pk}/latents.png")
    assert response["Content-Type"] == "image/png"
    sheet = Image.open(io.BytesIO(response.content))
    assert sheet.size == (COLUMNS * (12 * SCALE + GAP) + GAP, 3 * (8 * SCALE + GAP + LABEL) + GAP)
