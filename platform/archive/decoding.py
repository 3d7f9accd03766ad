"""Decode archived frames and store the images: one codec per process, one forward pass per
frame size. The decode workers' tasks call these; so does the embedded demo, in-process."""

from __future__ import annotations

import io
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from functools import cache

import numpy as np
from django.conf import settings
from PIL import Image

from archive import coordination, events, policy, references
from archive.images import clamp_channels, decoded_image, decoded_pairs, frames_needing_decode
from archive.jobs import LIVE_QUEUE, waiting
from archive.models import DecodedImage, DecodeFailure, Frame
from archive.services import archived_packet, record_decoded
from mcucoder.bitstream import Packet

log = logging.getLogger(__name__)


def torch_device() -> str:
    choice = settings.STRATA_DECODE_DEVICE
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@cache
def codec_for(model_id: int):
    """Load the decoder for ``model_id`` once per worker process, run by
    ``STRATA_DECODE_RUNTIME`` (``mcucoder.runtime``)."""
    from mcucoder.codec import Codec
    from mcucoder.runtime import with_runtime

    codec = Codec.load(model_id, device=torch_device(), encoder="float")
    if settings.STRATA_DECODE_RUNTIME != "torch":  # checked against torch first
        with_runtime(codec, settings.STRATA_DECODE_RUNTIME)
    return codec


def warm_decoder(size: tuple[int, int] = (224, 224)) -> float:
    """Load the default model's decoder and run it once on an empty latent, so that a
    worker's first frame (often a live viewer's, when a site starts) does not also wait for
    the weights and torch's first pass. Returns the seconds it took."""
    from mcucoder.registry import default_model_id

    started = time.perf_counter()
    codec = codec_for(default_model_id())
    height, width = size
    empty = np.zeros((codec.n_channels, -(-height // 8), -(-width // 8)), np.float32)
    codec.synthesise([empty], [size])
    return time.perf_counter() - started


def encode_image(rgb: np.ndarray) -> tuple[bytes, str]:
    fmt = settings.STRATA_DECODED_FORMAT
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, quality=settings.STRATA_DECODED_QUALITY)
    return buf.getvalue(), f"image/{fmt.lower()}"


def decode_passes(
    requests: Sequence[tuple[Frame, int]],
) -> Iterator[list[tuple[Frame, int]]]:
    """Split decode requests into passes of at most ``STRATA_DECODE_BATCH_PIXELS`` pixels
    (at least one frame each), frames of one size together: what one forward pass holds."""
    budget = settings.STRATA_DECODE_BATCH_PIXELS
    batch: list[tuple[Frame, int]] = []
    pixels = 0
    for request in sorted(requests, key=lambda r: (r[0].height, r[0].width)):
        size = request[0].width * request[0].height
        if batch and pixels + size > budget:
            yield batch
            batch, pixels = [], 0
        batch.append(request)
        pixels += size
    if batch:
        yield batch


def _mark_failed(frame: Frame, channels: int, exc: Exception) -> None:
    error = f"{type(exc).__name__}: {exc}"
    log.warning("frame %s cannot be decoded at k=%d: %s", frame.pk, channels, error)
    DecodeFailure.objects.update_or_create(
        frame_id=frame.pk, channels=channels, defaults={"error": error[:2000]}
    )


def _decode_pass(codec, requests: Sequence[tuple[Frame, int]]) -> list[DecodedImage]:
    """One forward pass over the frames whose symbols decode; a frame whose content fails
    (a corrupt chunk, a predicted frame whose reference is missing) fails alone and is
    marked (``DecodeFailure``). Content errors are ``ValueError``s (``PacketError`` is
    one); anything else (the database, the GPU) propagates, and the task is retried.

    Frames go in camera and ``seq`` order, so that a predicted frame finds the state of
    the one before it held (``archive.references``)."""
    good: list[tuple[Frame, Packet]] = []
    inputs: list[np.ndarray] = []
    started = time.perf_counter()
    for frame, channels in sorted(requests, key=lambda r: (r[0].device_id, r[0].seq)):
        try:
            packet = archived_packet(frame, channels)
        except ValueError as exc:  # layers that make no packet (a gap at layer 0, a header)
            _mark_failed(frame, channels, exc)
            continue
        try:
            inputs.append(references.decoder_input(frame, packet, codec))
            good.append((frame, packet))
        except ValueError as exc:
            _mark_failed(frame, packet.n_channels, exc)
    if not good:
        return []
    images = codec.synthesise(inputs, [(p.height, p.width) for _, p in good])
    per_frame_ms = (time.perf_counter() - started) * 1000 / len(good)
    stored: list[DecodedImage] = []
    for (frame, packet), rgb in zip(good, images, strict=True):
        data, content_type = encode_image(rgb)
        decoded, created = record_decoded(
            frame.pk, packet.n_channels, data, content_type, per_frame_ms, codec.decoder_revision
        )
        if created:
            stored.append(decoded)
    return stored


def _claim_key(frame_id: int, channels: int) -> str:
    return f"decoding:{frame_id}:{channels}"


def decode_and_store(
    requests: Sequence[tuple[Frame, int]], owner: str | None = None
) -> list[DecodedImage]:
    """Decode each (frame, k) from its first k archived layers and store the image once.

    Frames are grouped by model and split into passes bounded in pixels
    (``decode_passes``); the codec batches each pass by size: one forward pass per size.
    A frame that cannot be decoded fails alone and is marked. Returns the images newly
    stored (a redelivered task stores nothing twice).

    With ``owner`` (the task's id) each (frame, k) is claimed first, and one that another
    worker is decoding is left to it: two workers never decode the same frame. A task
    given back after its worker died has the same id, and takes its claims over.
    """
    if owner is not None:
        keys = [_claim_key(f.pk, k) for f, k in requests]
        taken = coordination.claim(keys, owner, settings.STRATA_DECODE_CLAIM_S)
        mine = [r for r, ok in zip(requests, taken, strict=True) if ok]
        # stored by a worker that held the claim until just now?
        done = decoded_pairs(mine)
        coordination.release([_claim_key(f.pk, k) for f, k in mine if (f.pk, k) in done])
        requests = [(f, k) for f, k in mine if (f.pk, k) not in done]
    by_model: dict[int, list[tuple[Frame, int]]] = defaultdict(list)
    for frame, channels in requests:
        by_model[frame.model_id].append((frame, channels))
    stored: list[DecodedImage] = []
    try:
        for model_id, group in by_model.items():
            codec = codec_for(model_id)
            for requests_of_pass in decode_passes(group):
                stored += _decode_pass(codec, requests_of_pass)
    finally:
        if owner is not None:
            coordination.release([_claim_key(f.pk, k) for f, k in requests])
    if requests:
        coordination.count("frames", len(requests))
    return stored


def _failed(requests: Sequence[tuple[Frame, int]]) -> set[tuple[int, int]]:
    """The (frame id, k) among ``requests`` already marked as undecodable."""
    return set(
        DecodeFailure.objects.filter(frame_id__in=[f.pk for f, _ in requests]).values_list(
            "frame_id", "channels"
        )
    )


def _at_full_k(frames: Sequence[Frame]) -> list[tuple[Frame, int]]:
    requests = [(f, f.n_layers) for f in frames]
    failed = _failed(requests)
    return [(f, k) for f, k in requests if (f.pk, k) not in failed]


def _announce(stored: Sequence[DecodedImage], every: bool = True) -> None:
    """Tell the live views (``archive.events``); with ``every`` off only the images newer
    than any their camera has shown, so that decoding behind the live view (backfill,
    eager) never takes a page back in time."""
    for decoded in stored:
        frame = decoded.frame
        newer = DecodedImage.objects.filter(
            frame__device_id=frame.device_id, frame__capture_time_ms__gt=frame.capture_time_ms
        )
        if every or not newer.exists():
            events.frame_decoded(decoded)


def decode_frames(
    frame_ids: Sequence[int], announce: bool = True, owner: str | None = None
) -> list[DecodedImage]:
    """Every given frame at all the layers it has, unless already done or marked
    undecodable; each new image is announced to the live views, or with ``announce`` off
    (eager decoding behind the live view) only a camera's newest."""
    stored = decode_and_store(_at_full_k(frames_needing_decode(frame_ids)), owner)
    log.debug("decoded %d of %d frames", len(stored), len(frame_ids))
    _announce(stored, every=announce)
    return stored


def decode_live(frame_ids: Sequence[int], owner: str | None = None) -> list[DecodedImage]:
    """Live view: for each camera of the given frames, its newest frame (which may have
    arrived after these were queued), decoded and announced. Frames in between are left to
    backfill or to whoever asks: a viewer wants the newest picture, not the queue."""
    given = list(Frame.objects.filter(pk__in=frame_ids).only("pk", "device_id", "received_at"))
    policy.live_decode_started(given)
    since: dict[int, object] = {}
    for f in given:
        since[f.device_id] = min(since.get(f.device_id, f.received_at), f.received_at)
    newest = [
        Frame.objects.filter(device_id=device_pk, received_at__gte=received, n_layers__gt=0)
        .select_related("device")
        .order_by("-capture_time_ms", "-seq")
        .first()
        for device_pk, received in since.items()
    ]
    frames = frames_needing_decode([f.pk for f in newest if f is not None])
    stored: list[DecodedImage] = []
    for request in _at_full_k(frames):  # each camera's viewer sees its frame once decoded
        decoded = decode_and_store([request], owner)
        _announce(decoded)
        stored += decoded
    coordination.count("live", len(stored))
    return stored


def backfill(owner: str | None = None, events: bool = False) -> int:
    """Idle time: decode up to ``STRATA_BACKFILL_BATCH`` frames nobody asked for (with
    ``events``: event frames), newest first, one at a time, and stop as soon as a live
    decode waits (it is taken next); queue the next round while there are more. Returns
    the frames decoded."""
    batch = settings.STRATA_BACKFILL_BATCH
    candidates = policy.backfill_candidates(batch * 4, events)
    stored: list[DecodedImage] = []
    for request in _at_full_k(candidates)[:batch]:
        stored += decode_and_store([request], owner)
        if waiting(LIVE_QUEUE):
            break
    _announce(stored, every=False)
    coordination.release([policy.backfill_pending(events)])
    if len(candidates) > batch or (candidates and stored):
        policy.request_backfill(events)
    coordination.count("events" if events else "backfill", len(stored))
    return len(stored)


def redecode(frame_id: int, channels: int, owner: str | None = None) -> DecodedImage | None:
    """Archive view: the frame at ``channels`` (capped at the layers received), cached.

    Returns None for a frame that does not exist, has no layers, or cannot be decoded at
    ``channels`` (marked; not tried again), or that another worker is decoding right now.
    """
    frame = Frame.objects.filter(pk=frame_id).first()
    if frame is None or frame.n_layers == 0:
        return None
    channels = clamp_channels(frame, channels)
    cached = decoded_image(frame_id, channels)
    if cached is not None or (frame.pk, channels) in _failed([(frame, channels)]):
        return cached
    decode_and_store([(frame, channels)], owner)
    return decoded_image(frame_id, channels)
