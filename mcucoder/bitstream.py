"""The frame packet: the byte contract between devices, relays and the platform.

Layout and field meanings are specified in ``docs/bitstream.md``. Pure Python (struct and
zlib only), so the ingest process can parse packets without numpy or torch. Parsing is
strict: any malformed input raises a specific :class:`PacketError`, never another
exception.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace

MAGIC = b"SF"
VERSION = 1  # intra-only packets (what Codec.encode and the firmware send)
VERSION_2 = 2  # adds predicted frames: block size and motion share (docs/bitstream.md)
VERSIONS = (VERSION, VERSION_2)
MAX_PACKET_SIZE = 4 << 20  # 4 MiB: far above a 4K frame at full quality
MAX_CHANNELS = 32

FRAME_INTRA = 0
FRAME_PREDICTED = 1  # coded against the reference frame's symbols (version 2)
FRAME_TYPES = {FRAME_INTRA: "intra", FRAME_PREDICTED: "predicted"}

CODING_RAW = 0  # each latent value as one int8 byte (debugging, conformance)
CODING_RANS = 1  # per-channel static-table rANS (docs/bitstream.md)
CODING_RANS_CTX = 2  # static rANS tables selected by a left/top spatial context
CODINGS = {CODING_RAW: "raw-int8", CODING_RANS: "rans-static", CODING_RANS_CTX: "rans-context"}

# magic, version, frame_type, model_id, seq, capture_time_ms, width, height,
# coding, quant, ref, n_channels
_HEADER = struct.Struct("<2sBBIIQHHBBHB")
HEADER_SIZE = _HEADER.size  # 29 bytes (version 1)
# version 2 appends: block (latent cells per block side), motion (percent of blocks changed)
_HEADER_V2_EXTRA = struct.Struct("<BB")
HEADER_SIZES = {VERSION: HEADER_SIZE, VERSION_2: HEADER_SIZE + _HEADER_V2_EXTRA.size}
CRC_SIZE = 4
MOTION_UNKNOWN = 255  # no reference to compare with (and every version 1 packet)


class PacketError(ValueError):
    """A packet that cannot be accepted; subclasses say why."""


class TooLarge(PacketError):
    """The packet exceeds the size limit (checked before anything else)."""


class Truncated(PacketError):
    """Fewer bytes than the header and chunk lengths promise."""


class BadMagic(PacketError):
    """Not a Strata frame packet."""


class UnsupportedVersion(PacketError):
    """A packet version this parser does not know."""


class ChecksumMismatch(PacketError):
    """The CRC-32 does not match: the packet was corrupted."""


class Inconsistent(PacketError):
    """Fields that contradict each other or are out of range."""


class UnsupportedFeature(PacketError):
    """A well-formed packet using a frame type or coding method this decoder lacks."""


class UnknownModel(PacketError):
    """The packet's model_id names weights/tables this decoder does not have."""


class MissingReference(PacketError):
    """A predicted frame whose reference the decoder does not hold, or holds in another
    state than the encoder did (checked per channel): decoding it would show garbage."""


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_uvarint(data: bytes, pos: int, limit: int) -> tuple[int, int]:
    n = shift = 0
    for i in range(5):  # lengths < 2**35: more bytes is malformed
        if pos >= limit:
            raise Truncated("packet ends inside the chunk length table")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if i and b == 0:
                raise Inconsistent("non-minimal varint in the chunk length table")
            return n, pos
    raise Inconsistent("chunk length varint longer than 5 bytes")


def packet_size(chunk_sizes: list[int] | tuple[int, ...], version: int = VERSION) -> int:
    """Exact bytes of a packet whose channel chunks have these sizes (header, length
    table, chunks, CRC): what a frame cost on the wire, from what the archive keeps."""
    return HEADER_SIZES[version] + CRC_SIZE + sum(len(_uvarint(n)) + n for n in chunk_sizes)


@dataclass(frozen=True)
class Packet:
    """One coded frame. ``chunks[i]`` is latent channel i, in importance order."""

    version: int
    frame_type: int
    model_id: int
    seq: int
    capture_time_ms: int
    width: int
    height: int
    coding: int  # entropy coding method (CODING_*)
    quant: int  # quantisation table id within the model; 0 = as trained
    ref: int  # inter frames: seq distance to the reference frame; 0 for intra
    chunks: tuple[bytes, ...]
    block: int = 0  # version 2, predicted frames: block side in latent cells; else 0
    motion: int = MOTION_UNKNOWN  # version 2: percent of blocks that changed, 255 unknown

    def __post_init__(self) -> None:
        _check_fields(self)

    @property
    def n_channels(self) -> int:
        return len(self.chunks)

    @property
    def reference_seq(self) -> int | None:
        """``seq`` of the frame this one predicts from; None for an intra frame."""
        return None if self.frame_type == FRAME_INTRA else (self.seq - self.ref) % (1 << 32)

    @property
    def latent_size(self) -> tuple[int, int]:
        """(height, width) of the latent grid: the frame padded to a multiple of 8, / 8."""
        return (self.height + 7) // 8, (self.width + 7) // 8

    def with_channels(self, k: int) -> Packet:
        """The first ``k`` channels only: what a relay forwards on a thin link. On a
        predicted stream the dropped channels' references go stale at the decoder: a later
        frame predicting them is refused (:class:`MissingReference`) until they are sent
        intra again (docs/bitstream.md)."""
        if not 1 <= k <= self.n_channels:
            raise ValueError(f"k must be in 1..{self.n_channels}, got {k}")
        return replace(self, chunks=self.chunks[:k])

    def to_bytes(self) -> bytes:
        head = _HEADER.pack(
            MAGIC,
            self.version,
            self.frame_type,
            self.model_id,
            self.seq,
            self.capture_time_ms,
            self.width,
            self.height,
            self.coding,
            self.quant,
            self.ref,
            self.n_channels,
        )
        if self.version == VERSION_2:
            head += _HEADER_V2_EXTRA.pack(self.block, self.motion)
        body = head + b"".join(_uvarint(len(c)) for c in self.chunks) + b"".join(self.chunks)
        return body + struct.pack("<I", zlib.crc32(body))

    def header_fields(self) -> dict:
        """JSON-serialisable scalar fields, e.g. for the archive's database row."""
        extra = {"block": self.block, "motion": self.motion} if self.version >= VERSION_2 else {}
        return {
            "version": self.version,
            "frame_type": self.frame_type,
            "model_id": self.model_id,
            "seq": self.seq,
            "capture_time_ms": self.capture_time_ms,
            "width": self.width,
            "height": self.height,
            "coding": self.coding,
            "quant": self.quant,
            "ref": self.ref,
            "n_channels": self.n_channels,
            "payload_bytes": sum(len(c) for c in self.chunks),
            **extra,
        }


def _check_fields(p: Packet) -> None:
    """Range checks shared by building and parsing (raise :class:`Inconsistent`)."""
    limits = {
        "version": 0xFF,
        "frame_type": 0xFF,
        "model_id": 0xFFFFFFFF,
        "seq": 0xFFFFFFFF,
        "capture_time_ms": 0xFFFFFFFFFFFFFFFF,
        "width": 0xFFFF,
        "height": 0xFFFF,
        "coding": 0xFF,
        "quant": 0xFF,
        "ref": 0xFFFF,
        "block": 0xFF,
        "motion": 0xFF,
    }
    for name, hi in limits.items():
        v = getattr(p, name)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi:
            raise Inconsistent(f"{name}={v!r} out of range 0..{hi}")
    if p.version not in VERSIONS:
        raise UnsupportedVersion(f"packet version {p.version}, this parser reads {VERSIONS}")
    if p.version == VERSION and (p.block, p.motion) != (0, MOTION_UNKNOWN):
        raise Inconsistent("version 1 packets carry no block size or motion")
    if p.motion > 100 and p.motion != MOTION_UNKNOWN:
        raise Inconsistent(f"motion {p.motion} is neither a percentage nor 255 (unknown)")
    if p.width == 0 or p.height == 0:
        raise Inconsistent(f"empty frame {p.width}x{p.height}")
    if not 1 <= len(p.chunks) <= MAX_CHANNELS:
        raise Inconsistent(f"{len(p.chunks)} channels, expected 1..{MAX_CHANNELS}")
    if p.frame_type == FRAME_INTRA and p.ref != 0:
        raise Inconsistent("intra frame with a non-zero reference")
    if p.frame_type == FRAME_PREDICTED and p.ref == 0:
        raise Inconsistent("predicted frame without a reference")
    if p.version >= VERSION_2 and (p.frame_type == FRAME_PREDICTED) != (p.block > 0):
        raise Inconsistent("a block size is set for predicted frames and only for them")
    if p.coding == CODING_RAW:
        h, w = p.latent_size
        for i, c in enumerate(p.chunks):
            if len(c) != h * w:
                raise Inconsistent(f"raw chunk {i} has {len(c)} bytes, expected {h * w}")


def build_packet(
    *,
    model_id: int,
    width: int,
    height: int,
    chunks: list[bytes] | tuple[bytes, ...],
    seq: int = 0,
    capture_time_ms: int = 0,
    frame_type: int = FRAME_INTRA,
    coding: int = CODING_RANS,
    quant: int = 0,
    ref: int = 0,
    version: int = VERSION,
    block: int = 0,
    motion: int = MOTION_UNKNOWN,
) -> bytes:
    """Serialise a frame; raises :class:`Inconsistent` for out-of-range fields."""
    return Packet(
        version,
        frame_type,
        model_id,
        seq,
        capture_time_ms,
        width,
        height,
        coding,
        quant,
        ref,
        tuple(bytes(c) for c in chunks),
        block,
        motion,
    ).to_bytes()


def parse_packet(data: bytes, max_size: int = MAX_PACKET_SIZE) -> Packet:
    """Parse and validate a packet; raises a :class:`PacketError` subclass, nothing else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PacketError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise TooLarge(f"packet of {len(data)} bytes exceeds the {max_size}-byte limit")
    if data[:2] != MAGIC[: len(data[:2])]:
        raise BadMagic(f"bad magic {data[:2]!r}, expected {MAGIC!r}")
    if len(data) < 3:
        raise Truncated(f"packet of {len(data)} bytes is shorter than its header")
    if data[2] not in VERSIONS:
        raise UnsupportedVersion(f"packet version {data[2]}, this parser reads {VERSIONS}")
    header_size = HEADER_SIZES[data[2]]
    if len(data) < header_size + CRC_SIZE:
        raise Truncated(f"packet of {len(data)} bytes is shorter than its header")
    (_, version, frame_type, model_id, seq, t_ms, width, height, coding, quant, ref, n) = (
        _HEADER.unpack_from(data)
    )
    block, motion = 0, MOTION_UNKNOWN
    if version == VERSION_2:
        block, motion = _HEADER_V2_EXTRA.unpack_from(data, HEADER_SIZE)
    limit = len(data) - CRC_SIZE
    pos = header_size
    lengths = []
    for _ in range(n):
        length, pos = _read_uvarint(data, pos, len(data))
        lengths.append(length)
    need = pos + sum(lengths) + CRC_SIZE
    if need > len(data):
        raise Truncated(f"packet has {len(data)} bytes, its header promises {need}")
    if need < len(data):
        raise Inconsistent(f"{len(data) - need} bytes after the last chunk")
    (crc,) = struct.unpack_from("<I", data, limit)
    if zlib.crc32(data[:limit]) != crc:
        raise ChecksumMismatch("CRC-32 mismatch: the packet is corrupted")
    if frame_type not in FRAME_TYPES:
        raise UnsupportedFeature(f"unknown frame type {frame_type}")
    if coding not in CODINGS:
        raise UnsupportedFeature(f"unknown coding method {coding}")
    chunks = []
    for length in lengths:
        chunks.append(data[pos : pos + length])
        pos += length
    fields = (version, frame_type, model_id, seq, t_ms, width, height, coding, quant, ref)
    return Packet(*fields, tuple(chunks), block, motion)


STREAM_MAGIC = b"SFS1"


def pack_stream(packets: list[bytes]) -> bytes:
    """A stream file: ``SFS1`` then each packet as u32 little-endian length + bytes."""
    return STREAM_MAGIC + b"".join(struct.pack("<I", len(p)) + p for p in packets)


def unpack_stream(data: bytes) -> list[bytes]:
    """Split a stream file into packets (each still to be parsed)."""
    if data[:4] != STREAM_MAGIC:
        raise BadMagic(f"not a packet stream: magic {data[:4]!r}")
    out, pos = [], 4
    while pos < len(data):
        if pos + 4 > len(data):
            raise Truncated("stream ends inside a packet length")
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + n > len(data):
            raise Truncated("stream ends inside a packet")
        out.append(data[pos : pos + n])
        pos += n
    return out
