"""Decoded images record the decoder revision that made them (``mcucoder.decoders``): after
a release, an image of an older revision is told apart (stale) and decoded again when that
(frame, k) is asked for, while anything that takes any image still has one meanwhile."""

from __future__ import annotations

import numpy as np
import pytest

from archive.decoding import codec_for, decode_frames, redecode
from archive.images import (
    best_decoded,
    current_decoder,
    decoded_image,
    decoded_images,
    decoded_pairs,
    frames_needing_decode,
)
from archive.models import DecodedImage
from archive.services import record_decoded, store_packet
from fleet.services import provision_device
from mcucoder import registry
from mcucoder.bitstream import parse_packet
from mcucoder.decoders import revision_of

pytestmark = pytest.mark.django_db

OLDER = "an-older-revision"  # a revision no manifest releases: what an image of before is


@pytest.fixture
def frame():
    codec = codec_for(registry.default_model_id())
    rng = np.random.default_rng(3)
    packet = parse_packet(codec.encode(rng.integers(0, 255, (48, 64, 3), np.uint8), seq=1))
    return store_packet(provision_device("cam-revision"), packet).frame


def test_the_worker_decodes_with_the_revision_the_platform_calls_current(frame):
    codec = codec_for(frame.model_id)
    assert current_decoder(frame.model_id) == codec.decoder_revision == revision_of(frame.model_id)
    (stored,) = decode_frames([frame.pk])
    assert stored.decoder == codec.decoder_revision  # recorded with the image


def test_an_image_of_an_older_revision_is_stale_and_redecoded_when_asked_for(frame):
    stale, created = record_decoded(frame.pk, 12, b"older pixels", "image/webp", 1.0, OLDER)
    assert created and stale.decoder == OLDER
    # told apart: asking for exactly (frame, 12) does not take it ...
    assert decoded_image(frame.pk, 12) is None
    assert decoded_images([frame], [12]) == {}
    assert decoded_pairs([(frame, 12)]) == set()
    # ... while what shows any image (overview, live view, the image URL) still has one,
    # and no mass re-decode starts: backfill and live decoding count it as decoded
    assert best_decoded(frame).pk == stale.pk
    assert frames_needing_decode([frame.pk]) == []

    again = redecode(frame.pk, 12)  # the frame page, the slider, an export
    assert again is not None and again.pk == stale.pk  # replaced in place: one per (frame, k)
    assert again.decoder == current_decoder(frame.model_id)
    assert bytes(again.image) != b"older pixels"
    assert decoded_image(frame.pk, 12).pk == again.pk
    assert DecodedImage.objects.filter(frame=frame).count() == 1


def test_a_current_image_is_kept_and_replaces_only_a_stale_one(frame):
    current = current_decoder(frame.model_id)
    first, created = record_decoded(frame.pk, 4, b"one", "image/webp", 1.0, current)
    second, again = record_decoded(frame.pk, 4, b"two", "image/webp", 1.0, current)
    assert created and not again and bytes(second.image) == b"one"  # a redelivered decode
    # a worker still on the older revision (a rolling upgrade) does not take it back
    older, replaced = record_decoded(frame.pk, 4, b"three", "image/webp", 1.0, OLDER)
    assert not replaced and older.pk == first.pk and bytes(older.image) == b"one"
    record_decoded(frame.pk, 5, b"four", "image/webp", 1.0, OLDER)
    newer, replaced = record_decoded(frame.pk, 5, b"five", "image/webp", 1.0, current)
    assert replaced and bytes(newer.image) == b"five" and newer.decoder == current
    unnamed, _ = record_decoded(frame.pk, 6, b"six", "image/webp", 1.0)
    assert unnamed.decoder == current  # by default: what the platform decodes with now
