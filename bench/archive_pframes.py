"""What predicted frames cost the archive's decoder (issue 18): a P frame decoded cold
(walking back through the archive to its key frame) against one decoded right after the
frame before it (its reference held), and intra frames of the same clip.

Archives ``--frames`` frames of the plaza clip (384x288, ``bench.pframes.plaza``) twice on
PostgreSQL: as a P stream with one key frame (``--key-interval``), and intra only; then
times, one torch thread: the symbols of each P frame going forward (the live view, an
export), the walk of the last frame from nothing held, and whole decodes (symbols, decoder
network, WebP) per frame for both streams.

    python -m bench.archive_pframes [--frames 50] [--key-interval 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid

from bench._harness import machine, report, setup_django


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--key-interval", type=int, default=50)
    args = parser.parse_args(argv)

    setup_django()
    import torch

    from archive import references
    from archive.decoding import codec_for, decode_and_store
    from archive.models import Frame
    from archive.partitions import ensure_layer_partitions
    from archive.services import archived_packet, store_packets
    from bench.pframes import plaza
    from fleet.services import provision_device
    from mcucoder import bitstream as bs
    from mcucoder import registry
    from mcucoder.video import VideoEncoder

    torch.set_num_threads(1)
    _log(f"loading {args.frames} plaza frames and the codec")
    images = plaza(args.frames)
    codec = codec_for(registry.default_model_id())
    encoder = VideoEncoder(codec, key_interval=args.key_interval)
    tag = uuid.uuid4().hex[:6]
    p_cam, i_cam = provision_device(f"bench-p-{tag}"), provision_device(f"bench-i-{tag}")
    p_packets = [encoder.encode(img, 12, seq, seq * 1000).packet for seq, img in enumerate(images)]
    i_packets = [codec.encode(img, 12, seq, seq * 1000) for seq, img in enumerate(images)]
    ensure_layer_partitions()
    store_packets([(p_cam, bs.parse_packet(p)) for p in p_packets])
    store_packets([(i_cam, bs.parse_packet(p)) for p in i_packets])
    p_frames = list(Frame.objects.filter(device=p_cam).order_by("seq"))
    i_frames = list(Frame.objects.filter(device=i_cam).order_by("seq"))
    _log(f"archived: P stream {sum(map(len, p_packets)):,} B, intra {sum(map(len, i_packets)):,} B")

    def symbols_ms(frame: Frame) -> float:
        started = time.perf_counter()
        references.decoder_input(frame, archived_packet(frame), codec)
        return (time.perf_counter() - started) * 1000

    references.forget()
    forward = [symbols_ms(f) for f in p_frames]  # each right after the one before
    references.forget()
    cold = symbols_ms(p_frames[-1])  # walks back to the key frame
    references.forget()
    intra_symbols = [symbols_ms(f) for f in i_frames]
    _log(f"symbols: P forward {statistics.median(forward[1:]):.1f} ms, cold {cold:.0f} ms")

    def decode_ms(frames: list[Frame]) -> list[float]:
        references.forget()
        out = []
        for frame in frames:
            started = time.perf_counter()
            decode_and_store([(frame, 12)])
            out.append((time.perf_counter() - started) * 1000)
        return out

    p_decode, i_decode = decode_ms(p_frames), decode_ms(i_frames)
    _log(
        f"whole decode: P {statistics.median(p_decode[1:]):.0f} ms, intra {statistics.median(i_decode):.0f} ms"
    )
    report(
        {
            "bench": "archive_pframes",
            "machine": machine(),
            "frames": args.frames,
            "size": f"{images[0].shape[1]}x{images[0].shape[0]}",
            "key_interval": args.key_interval,
            "bytes_p_stream": sum(map(len, p_packets)),
            "bytes_intra": sum(map(len, i_packets)),
            "p_symbols_forward_ms_median": round(statistics.median(forward[1:]), 1),
            "p_symbols_forward_ms_max": round(max(forward[1:]), 1),
            "p_symbols_cold_last_ms": round(cold, 1),
            "p_chain_frames_walked": len(p_frames) - 1,
            "intra_symbols_ms_median": round(statistics.median(intra_symbols), 1),
            "p_decode_forward_ms_median": round(statistics.median(p_decode[1:]), 1),
            "intra_decode_ms_median": round(statistics.median(i_decode), 1),
        }
    )


if __name__ == "__main__":
    main()
