"""Predicted frames (issue 18) through the real ingest into the archive, decoded by the
archive as mcucoder decodes the same stream."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from archive import references
from archive.decoding import codec_for, decode_frames, redecode
from archive.images import as_rgb
from archive.models import DecodeFailure, Frame
from fleet.services import provision_device
from ingest.services import ingest_frames
from mcucoder import bitstream as bs
from mcucoder import registry
from mcucoder.predictive import PredictiveDecoder
from tests.support.predicted import p_stream

pytestmark = pytest.mark.django_db


def expected(packets: list[bytes], k: int) -> list[np.ndarray]:
    """mcucoder's own decode of the stream at k, as the archive stores it (WebP)."""
    from archive.decoding import encode_image

    codec = codec_for(registry.default_model_id())
    decoder = PredictiveDecoder(codec.tables)
    out = []
    for raw in packets:
        packet = bs.parse_packet(raw)
        reference = decoder.reference
        decoder.decode(packet)
        rgb = codec.decode(packet, k, reference)
        data, _ = encode_image(rgb)
        out.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return out


@pytest.fixture(autouse=True)
def fresh_states(clean_redis):
    references.forget()
    yield
    references.forget()


def ingest(device_id: str, packets: list[bytes]) -> list[Frame]:
    outcome = ingest_frames([(device_id, p) for p in packets])
    assert not outcome.rejected
    return list(Frame.objects.filter(device__device_id=device_id).order_by("seq"))


def test_ingest_stores_predicted_frames_as_sent():
    packets = p_stream(4)
    frames = ingest(provision_device("cam-p-store").device_id, packets)
    assert [f.frame_type for f in frames] == [bs.FRAME_INTRA] + [bs.FRAME_PREDICTED] * 3
    for frame, raw in zip(frames, packets, strict=True):
        sent = bs.parse_packet(raw)
        assert frame.n_layers == sent.n_channels == 12
        assert [
            bytes(d) for d in frame.layers.order_by("index").values_list("data", flat=True)
        ] == list(sent.chunks)
        assert frame.header["ref"] == sent.ref


@pytest.mark.parametrize("k", [2, 6, 12])
def test_archive_decodes_a_predicted_stream_as_mcucoder_does(k):
    packets = p_stream(5)
    frames = ingest(provision_device(f"cam-p-decode-{k}").device_id, packets)
    want = expected(packets, k)
    # newest first, from nothing held: each frame walks back to the key frame
    for frame, image in reversed(list(zip(frames, want, strict=True))):
        references.forget()
        decoded = redecode(frame.pk, k)
        assert decoded is not None, DecodeFailure.objects.filter(frame=frame).first()
        assert np.array_equal(as_rgb(decoded), image)
    assert not np.array_equal(want[0], want[-1])  # the square moved


def test_live_decoding_goes_forward_from_the_state_held():
    packets = p_stream(6)
    frames = ingest(provision_device("cam-p-live").device_id, packets)
    want = expected(packets, 12)
    for frame, image in zip(frames[:3], want[:3], strict=True):
        (decoded,) = decode_frames([frame.pk])
        assert np.array_equal(as_rgb(decoded), image)
    # the key frame and frame 2 go: frame 4 still decodes from frame 3's state, held here
    Frame.objects.filter(pk__in=[frames[0].pk, frames[1].pk]).delete()
    (decoded,) = decode_frames([frames[3].pk])
    assert np.array_equal(as_rgb(decoded), want[3])
    # a process that holds nothing walks back, and finds the chain broken
    references.forget()
    assert decode_frames([frames[4].pk]) == []
    failure = DecodeFailure.objects.get(frame=frames[4])
    assert "needs frame 2" in failure.error and "missing" in failure.error


def test_a_lost_packet_fails_clearly_until_the_next_key_frame():
    packets = p_stream(7, key_interval=4)  # key frames at seq 1 and 5
    device_id = provision_device("cam-p-lost").device_id
    frames = ingest(device_id, packets[:2] + packets[3:])  # seq 3 lost on the way
    by_seq = {f.seq: f for f in frames}
    want = expected(packets, 12)
    assert redecode(by_seq[2].pk, 12) is not None
    assert redecode(by_seq[4].pk, 12) is None
    failure = DecodeFailure.objects.get(frame=by_seq[4])
    assert failure.error == (
        "MissingReference: frame 4 needs frame 3 (on its way back to a key frame), which is missing"
    )
    for seq in (5, 6, 7):  # the next key frame resumes the stream
        assert np.array_equal(as_rgb(redecode(by_seq[seq].pk, 12)), want[seq - 1])


def test_a_thinned_reference_decodes_at_its_layers_only():
    packets = p_stream(3)
    frames = ingest(provision_device("cam-p-thin").device_id, packets)
    frames[0].layers.filter(index__gte=3).delete()
    Frame.objects.filter(pk=frames[0].pk).update(n_layers=3)
    assert np.array_equal(as_rgb(redecode(frames[2].pk, 3)), expected(packets, 3)[2])
    assert redecode(frames[2].pk, 12) is None
    assert "predicts channel 3" in DecodeFailure.objects.get(frame=frames[2], channels=12).error


def test_a_reference_that_arrives_late_lets_the_frame_decode():
    """Two ingest processes share a camera's frames: frame 3 may be decoded before
    frame 2 is archived. It fails, and is tried again once frame 2 is there."""
    packets = p_stream(3)
    device_id = provision_device("cam-p-late").device_id
    ingest(device_id, [packets[0], packets[2]])
    third = Frame.objects.get(device__device_id=device_id, seq=3)
    assert redecode(third.pk, 12) is None
    assert redecode(third.pk, 12) is None  # marked: not tried again meanwhile
    ingest(device_id, [packets[1]])
    assert not DecodeFailure.objects.filter(frame=third).exists()
    assert np.array_equal(as_rgb(redecode(third.pk, 12)), expected(packets, 12)[2])


def test_previews_of_predicted_frames_read_their_decoded_symbols():
    from archive.decoding import encode_image
    from archive.previews import preview_image
    from mcucoder.predictive import encode_intra_channel
    from mcucoder.preview import PREVIEW_CHANNELS, preview

    packets = p_stream(3)
    frames = ingest(provision_device("cam-p-preview").device_id, packets)
    codec = codec_for(registry.default_model_id())
    decoder = PredictiveDecoder(codec.tables)
    symbols = [decoder.decode(bs.parse_packet(p)) for p in packets][2]
    as_key = bs.build_packet(
        model_id=codec.model_id,
        width=96,
        height=72,
        seq=3,
        coding=bs.CODING_RANS,
        chunks=[
            encode_intra_channel(symbols[c], codec.tables[c], bs.CODING_RANS)
            for c in range(PREVIEW_CHANNELS)
        ],
    )
    assert preview_image(frames[2]) == encode_image(preview(codec, as_key))
    frames[1].delete()
    references.forget()
    with pytest.raises(bs.MissingReference, match="needs frame 2"):
        preview_image(frames[2])


def test_latent_maps_of_a_predicted_frame_are_its_decoded_symbols():
    """The dashboard's latent maps of a P frame: the reference applied, as the decoder sees it."""
    from dashboard.latents import latent_maps

    packets = p_stream(3)
    frames = ingest(provision_device("cam-p-latents").device_id, packets)
    codec = codec_for(registry.default_model_id())
    decoder = PredictiveDecoder(codec.tables)
    for raw in packets[:-1]:
        decoder.decode(bs.parse_packet(raw))
    last = bs.parse_packet(packets[-1])
    assert last.frame_type == bs.FRAME_PREDICTED
    want = codec.dequantise(last, None, decoder.reference)
    references.forget()
    assert np.array_equal(latent_maps(frames[-1]), want)
