"""Predicted frames in the archive (issue 18): the reference a P frame decodes against.

A P frame is archived as sent. To show it, the decoder needs the state after the frame it
predicts from: walk back through the camera's archived packets by ``seq``
(``mcucoder.predictive.chain_to_key``) to its key frame, or to a frame whose state this
process still holds, and decode the chain's symbols forward once. The state after each
decoded frame is kept per process (bounded, newest per camera), so the live view and an
export, which go forward frame by frame, walk one step each time.

A broken chain (a frame lost on the way or deleted) raises ``MissingReference``, a
``ValueError``: the decode paths mark the frame as undecodable with that reason, never
show a wrong image.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

import numpy as np

from archive.models import Frame
from archive.services import archived_packet
from mcucoder import bitstream as bs
from mcucoder.predictive import MODE_INTRA, Reference, advance, chain_to_key

MAX_CHAIN = 1000  # frames a walk back to a key frame may take (the encoder's default: 50)
HELD_FRAMES = 512  # decoder states kept per process, least recently used out first
HELD_PER_CAMERA = 4  # newest states per camera: the live view and an export going forward

# frame pk -> (camera, layers it had, the state after it); a frame that gained layers since
# (a later packet with more channels) is walked again
_held: OrderedDict[int, tuple[int, int, Reference]] = OrderedDict()
_lock = Lock()


class _Held(Exception):
    """Control flow: the walk back reached a frame whose state is held here."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference


def held(frame: Frame) -> Reference | None:
    """The decoder state after ``frame`` if this process holds it for its layers."""
    with _lock:
        found = _held.get(frame.pk)
        if found is None or found[1] != frame.n_layers:
            return None
        _held.move_to_end(frame.pk)
        return found[2]


def _remember(frame: Frame, state: Reference) -> Reference:
    """Keep the state after ``frame`` (int16: symbols fit, a quarter of the memory)."""
    small = tuple(None if c is None else c.astype(np.int16) for c in state.channels)
    state = Reference(state.seq, state.latent_size, small)
    with _lock:
        _held[frame.pk] = (frame.device_id, frame.n_layers, state)
        _held.move_to_end(frame.pk)
        mine = [pk for pk, (device, _, _) in _held.items() if device == frame.device_id]
        for pk in mine[:-HELD_PER_CAMERA]:
            del _held[pk]
        while len(_held) > HELD_FRAMES:
            _held.popitem(last=False)
    return state


def forget() -> None:
    """Drop every held state (tests; a process that wants its memory back)."""
    with _lock:
        _held.clear()


def _sent_channels(frame: Frame) -> int:
    return max(int(frame.header.get("n_channels", 0)), frame.n_layers)


def state_after(frame: Frame, packet: bs.Packet, reference: Reference | None, symbols) -> Reference:
    """Keep the decoder state after ``frame`` decoded from ``packet`` (its first layers)
    into ``symbols``. Channels the camera sent but the archive lacks (thinned, a gap) have
    no state after it: a later frame predicting them fails clearly instead of using an
    older one."""
    state = advance(reference, packet, np.asarray(symbols, np.int64))
    missing = range(len(symbols), _sent_channels(frame))
    if missing:
        channels = list(state.channels) + [None] * max(
            0, _sent_channels(frame) - len(state.channels)
        )
        for c in missing:
            channels[c] = None
        state = Reference(state.seq, state.latent_size, tuple(channels))
    return _remember(frame, state)


def _decodable(packet: bs.Packet, state: Reference | None) -> int:
    """How many leading channels of ``packet`` have what they need: a frame on the way
    back whose reference lost upper layers (thinned) still passes its lower ones on."""
    if packet.frame_type == bs.FRAME_INTRA:
        return packet.n_channels
    k = 0
    for c, chunk in enumerate(packet.chunks):
        if chunk[:1] != bytes([MODE_INTRA]) and (state is None or state.channel(c) is None):
            break
        k += 1
    return max(k, 1)


def reference_for(frame: Frame, packet: bs.Packet, codec) -> Reference | None:
    """The decoder state ``packet`` (of ``frame``) predicts from; None for a key frame.

    Walks back by ``seq`` through the camera's archive (at most ``MAX_CHAIN`` frames) to
    the key frame or a held state, and decodes forward every layer each frame has.
    Raises ``MissingReference`` when a frame on the way is not archived."""
    if packet.frame_type == bs.FRAME_INTRA:
        return None
    walked: list[tuple[Frame, bs.Packet]] = []  # newest first

    def lookup(seq: int) -> bs.Packet | None:
        found = Frame.objects.filter(device_id=frame.device_id, seq=seq).first()
        if found is None or found.n_layers == 0:
            return None
        if (state := held(found)) is not None:
            raise _Held(state)
        walked.append((found, archived_packet(found)))
        return walked[-1][1]

    try:
        chain_to_key(packet, lookup, MAX_CHAIN)
        state = None
    except _Held as reached:
        state = reached.reference
    for earlier, earlier_packet in reversed(walked):
        symbols = codec.symbols_of(earlier_packet, _decodable(earlier_packet, state), state)
        state = state_after(earlier, earlier_packet, state, symbols)
    return state


def decoder_input(frame: Frame, packet: bs.Packet, codec) -> np.ndarray:
    """The decoder's input (12, H/8, W/8) for ``packet``, the first layers of ``frame``,
    predicted or not; decoded from every layer archived, the state after it is kept for
    the next frame."""
    reference = reference_for(frame, packet, codec)
    y = codec.dequantise(packet, None, reference)
    if packet.n_channels >= frame.n_layers:  # not a lower k: the whole state is known
        state_after(frame, packet, reference, y[: packet.n_channels])
    return y
