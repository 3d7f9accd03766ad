"""The codec as a library: images <-> frame packets with a registered model."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import torch

from . import bitstream as bs
from .decoders import load_decoder
from .entropy import ChannelTable, tables_from_json
from .models import DOWNSCALE, N_CHANNELS, Decoder, Encoder
from .predictive import Reference, decode_symbols, encode_intra_channel
from .registry import WEIGHTS_DIR, model_entry, model_id_of


def pad_to_multiple(image: np.ndarray, m: int = DOWNSCALE) -> np.ndarray:
    """Edge-replicate the bottom/right so both sides are multiples of ``m``."""
    h, w = image.shape[:2]
    ph, pw = -h % m, -w % m
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return image


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
    if not (1 <= image.shape[0] <= 0xFFFF and 1 <= image.shape[1] <= 0xFFFF):
        raise ValueError(f"image size {image.shape[1]}x{image.shape[0]} out of range")
    return image


class Codec:
    """Encoder, decoder and entropy tables of one model; ``model_id`` names all three."""

    def __init__(
        self,
        name: str,
        model_id: int,
        encoder: Encoder,
        decoder: Decoder,
        tables: list[ChannelTable],
        device: str = "cpu",
        int8: object | None = None,
        decoder_revision: str = "base",
    ) -> None:
        self.name = name
        self.model_id = model_id
        self.encoder = encoder.to(device).eval()
        self.decoder = decoder.to(device).eval()
        self.tables = tables
        self.device = torch.device(device)
        self.int8 = int8  # an Int8Encoder, or None for the float encoder
        self.n_channels = N_CHANNELS
        self.decoder_revision = decoder_revision  # mcucoder.decoders
        self.coding = (
            bs.CODING_RANS_CTX if all(t.ctx_freq is not None for t in tables) else bs.CODING_RANS
        )
        self._lo = np.array([t.lo for t in tables]).reshape(-1, 1, 1)
        self._hi = np.array([t.hi for t in tables]).reshape(-1, 1, 1)

    @classmethod
    def load(
        cls,
        model: str | None = None,
        device: str = "cpu",
        encoder: str = "auto",
        reference_kernels: bool = False,
        decoder: str | None = None,
    ) -> Codec:
        """Load a registered model (None: the manifest's default).

        ``encoder``: "int8" runs the deployed TFLite model (ai-edge-litert), "float" the
        PyTorch encoder, "auto" int8 when the .tflite file exists, else float.
        ``reference_kernels``: TFLite's reference kernels, bit-exact with TFLite-Micro.
        ``decoder``: None for the released decoder revision (``mcucoder.decoders``), "base"
        for the decoder stored with the encoder.
        """
        name, entry = model_entry(model)
        wpath, tpath = WEIGHTS_DIR / entry["weights"], WEIGHTS_DIR / entry["tables"]
        if model_id_of(wpath, tpath) != entry["model_id"]:
            raise ValueError(f"{name}: weight/table files do not match the manifest's model_id")
        state = torch.load(wpath, map_location="cpu", weights_only=True)
        enc = Encoder()
        enc.load_state_dict(state["encoder"])
        dec, revision = load_decoder(entry, decoder, state=state)
        tables = tables_from_json(json.loads(tpath.read_text()))
        int8 = None
        tflite = entry.get("tflite")
        tflite_path = WEIGHTS_DIR / tflite if tflite else None
        if encoder == "int8" or (encoder == "auto" and tflite_path and tflite_path.exists()):
            if not (tflite_path and tflite_path.exists()):
                raise FileNotFoundError(f"{name} has no INT8 .tflite encoder")
            from .int8 import Int8Encoder

            int8 = Int8Encoder(tflite_path, reference_kernels)
        elif encoder not in ("float", "auto"):
            raise ValueError(f"encoder must be 'int8', 'float' or 'auto', not {encoder!r}")
        return cls(name, entry["model_id"], enc, dec, tables, device, int8, revision)

    # -- encoding -------------------------------------------------------------------------

    def latent(self, image: np.ndarray) -> np.ndarray:
        """Real-valued latent (12, H/8, W/8) of an HxWx3 uint8 image, padded to /8."""
        padded = pad_to_multiple(_check_image(image))
        if self.int8 is not None:
            return self.int8(padded)
        x = torch.from_numpy(padded.copy()).permute(2, 0, 1)[None].float().div(255)
        with torch.no_grad():
            return self.encoder(x.to(self.device))[0].cpu().numpy()

    def symbols(self, image: np.ndarray) -> np.ndarray:
        """The integers the packet carries: latent rounded half up (floor(y + 0.5), as the
        firmware's lookup table does) and clamped to each table's range."""
        q = np.floor(self.latent(image) + np.float32(0.5)).astype(np.int64)
        return np.clip(q, self._lo, self._hi)

    def encode(
        self, image: np.ndarray, channels: int = N_CHANNELS, seq: int = 0, capture_time_ms: int = 0
    ) -> bytes:
        """One intra frame packet with the first ``channels`` latent channels."""
        if not 1 <= channels <= self.n_channels:
            raise ValueError(f"channels must be in 1..{self.n_channels}")
        h, w = np.asarray(image).shape[:2]
        q = self.symbols(image)
        chunks = [encode_intra_channel(q[c], self.tables[c], self.coding) for c in range(channels)]
        return bs.build_packet(
            model_id=self.model_id,
            width=w,
            height=h,
            chunks=chunks,
            seq=seq,
            capture_time_ms=capture_time_ms,
            coding=self.coding,
        )

    # -- decoding -------------------------------------------------------------------------

    def _packet(self, packet: bytes | bs.Packet) -> bs.Packet:
        p = packet if isinstance(packet, bs.Packet) else bs.parse_packet(packet)
        if p.model_id != self.model_id:
            raise bs.UnknownModel(
                f"packet model_id {p.model_id:#010x}, this codec is {self.name} {self.model_id:#010x}"
            )
        if p.quant != 0:
            raise bs.UnsupportedFeature(f"quantisation table {p.quant} is not defined")
        if p.n_channels > self.n_channels:
            raise bs.Inconsistent(f"{p.n_channels} channels, the model has {self.n_channels}")
        return p

    def symbols_of(
        self,
        packet: bytes | bs.Packet,
        channels: int | None = None,
        reference: Reference | None = None,
    ) -> np.ndarray:
        """The symbols (k, H/8, W/8) of the first ``channels`` channels (all: None); a
        predicted frame needs the decoder state after its reference frame
        (``mcucoder.predictive``), else :class:`~mcucoder.bitstream.MissingReference`."""
        return decode_symbols(self._packet(packet), self.tables, reference, channels)

    def dequantise(
        self,
        packet: bytes | bs.Packet,
        channels: int | None = None,
        reference: Reference | None = None,
    ) -> np.ndarray:
        """Entropy-decode a packet into the decoder's input (12, H/8, W/8), zeros for
        channels not present (exactly what tail drop trained the decoder with)."""
        q = self.symbols_of(packet, channels, reference)
        y = np.zeros((self.n_channels, *q.shape[1:]), np.float32)
        y[: len(q)] = q
        return y

    def decode(
        self,
        packet: bytes | bs.Packet,
        channels: int | None = None,
        reference: Reference | None = None,
    ) -> np.ndarray:
        """Reconstruct an HxWx3 uint8 image from the first ``channels`` channels (all: None)."""
        return self.decode_batch([packet], channels, [reference])[0]

    def decode_batch(
        self,
        packets: list[bytes | bs.Packet],
        channels: int | None = None,
        references: list[Reference | None] | None = None,
    ) -> list[np.ndarray]:
        """Decode many packets with one decoder pass per distinct frame size (predicted
        frames with the reference each needs, in ``references``)."""
        parsed = [self._packet(p) for p in packets]
        refs = references or [None] * len(parsed)
        return self.synthesise(
            [self.dequantise(p, channels, r) for p, r in zip(parsed, refs, strict=True)],
            [(p.height, p.width) for p in parsed],
        )

    def synthesise(self, ys: list[np.ndarray], sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        """Images from decoder inputs (12, H/8, W/8), cropped to (height, width) each."""
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, y in enumerate(ys):
            groups[y.shape[1:]].append(i)
        out: list[np.ndarray | None] = [None] * len(ys)
        for idx in groups.values():
            y = np.stack([ys[i] for i in idx])
            # channels-last activations: oneDNN's faster convolutions on CPU (about 1.2x at
            # 224x224, 1.5x at 768x512, one thread); the same images up to rare 1-level
            # rounding differences
            y = torch.from_numpy(y).to(self.device).contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                x = self.decoder(y)
            imgs = (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            for j, i in enumerate(idx):
                h, w = sizes[i]
                out[i] = np.ascontiguousarray(imgs[j, :h, :w])
        return out  # type: ignore[return-value]
