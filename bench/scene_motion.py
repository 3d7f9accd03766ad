"""Per-frame motion share of the simulator's scenes sent as predicted frames (issue 18).

    nice -n 10 .venv/bin/python -m bench.scene_motion [--frames 300] [--still] [--noise 2.5]
                                                      [--plaza]

Each scene is captured as a camera captures it (1 s of scene time a frame, 320x240) and
encoded with the camera's encoder and predicted frames (``mcucoder.video.VideoEncoder``,
the default key interval and dead zone). Prints the distribution of the packets' motion
share per scene and the share of frames the archive counts as events
(``STRATA_EVENT_MOTION``, 20 % unless set). ``--still`` leaves the moving things out: what
sensor noise and daylight drift alone read as motion. ``--plaza``: the real plaza clip of
the development data (``bench.pframes.plaza``) at 25, 5 and 1 frames a second instead.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def motion_shares(frames: list[np.ndarray], codec) -> np.ndarray:
    """The motion share (%) of each packet that carries one (all but the first)."""
    from mcucoder import bitstream as bs
    from mcucoder.video import VideoEncoder

    encoder = VideoEncoder(codec)
    shares = []
    for seq, image in enumerate(frames, start=1):
        packet = bs.parse_packet(encoder.encode(image, None, seq, 1000 * seq).packet)
        if packet.motion != bs.MOTION_UNKNOWN:
            shares.append(packet.motion)
    return np.array(shares)


def summary(shares: np.ndarray, event: int) -> dict:
    """The distribution of motion shares, and the share of event frames (%)."""
    return {
        "frames": len(shares),
        "mean": round(float(shares.mean()), 1),
        "p10": float(np.percentile(shares, 10)),
        "p50": float(np.median(shares)),
        "p90": float(np.percentile(shares, 90)),
        "max": int(shares.max()),
        "events_pct": round(100 * float(np.mean(shares >= event)), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per scene (1 s each)")
    parser.add_argument("--still", action="store_true", help="without the moving things")
    parser.add_argument("--noise", type=float, default=2.5, help="sensor noise sigma, levels")
    parser.add_argument("--plaza", action="store_true", help="the real plaza clip instead")
    args = parser.parse_args(argv)

    import torch

    from devices.scenes import SCENE_NAMES, SCENES, SyntheticScene
    from mcucoder.codec import Codec

    torch.set_num_threads(1)
    codec = Codec.load()  # the camera's encoder
    event = int(os.environ.get("STRATA_EVENT_MOTION", 20))
    results = {}
    if args.plaza:
        from bench.pframes import plaza

        clip = plaza(10_000)  # all of it: 795 frames at 25 frames a second
        for stride, fps in ((1, 25), (5, 5), (25, 1)):
            results[f"plaza@{fps}fps"] = summary(motion_shares(clip[::stride], codec), event)
    for name in () if args.plaza else SCENE_NAMES:
        if args.still and SCENES[name].clip:
            continue  # footage has no still version
        scene = SyntheticScene(name, noise_sigma=args.noise)
        if args.still:
            scene._sprites = []
        shares = motion_shares([scene.next_frame() for _ in range(args.frames)], codec)
        results[name] = summary(shares, event)
    for name, figures in results.items():
        print(name, figures, flush=True)
    print(json.dumps({"event_motion": event, "still": args.still, "scenes": results}))


if __name__ == "__main__":
    main()
