"""Rebuild the scene assets from their public sources (see README.md beside this file).

    apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb /tmp/ocv
    pip download --no-deps scikit-image==0.26.0 -d /tmp/sk && unzip /tmp/sk/*.whl -d /tmp/sk
    .venv/bin/python devices/assets/build_assets.py /tmp/ocv /tmp/sk

Deterministic: the same sources give the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageFilter

HERE = Path(__file__).resolve().parent
CLIP_SIZE = (320, 240)
CLIP_FPS = 5  # of the source's 10: every second frame
WALK = range(600, 612)  # the woman crossing the lawn from left to right, one gait cycle
WALK_START = (306, 508)  # her centre in the first frame (768x576 pixels)
SPRITE_SCALE = 0.6


def read_clip(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def build_clip(frames: np.ndarray, out: Path) -> None:
    """The plaza clip at the camera's resolution, every second frame, H.264."""
    with av.open(str(out), "w") as container:
        stream = container.add_stream(
            "libx264", rate=CLIP_FPS, options={"crf": "32", "preset": "veryslow"}
        )
        stream.width, stream.height, stream.pix_fmt = *CLIP_SIZE, "yuv420p"
        for frame in frames[:: 10 // CLIP_FPS]:
            small = Image.fromarray(frame).resize(CLIP_SIZE, Image.Resampling.BOX)
            container.mux(stream.encode(av.VideoFrame.from_image(small)))
        container.mux(stream.encode(None))


def connected(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The part of ``mask`` connected to ``seed`` (4-neighbourhood, by repeated dilation)."""
    region = np.zeros_like(mask)
    region[seed] = mask[seed]
    while True:
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= mask
        if (grown == region).all():
            return region
        region = grown


def build_walker(frames: np.ndarray, out: Path) -> None:
    """A person walking, cut from the plaza clip against its median background: one
    RGBA sprite sheet, frames side by side (10 frames a second)."""
    background = np.median(frames[::4], axis=0).astype(np.int16)
    cx, cy = WALK_START
    hw, hh = 45, 100
    cells = []
    for i in WALK:
        box = (slice(cy - hh, cy + hh), slice(cx - hw, cx + hw))
        moving = np.abs(frames[i].astype(np.int16) - background).max(axis=2)[box] > 40
        ys, xs = np.nonzero(moving)
        cx, cy = int(cx - hw + np.median(xs)), int(cy - hh + np.median(ys))
        box = (slice(cy - hh, cy + hh), slice(cx - hw, cx + hw))
        moving = np.abs(frames[i].astype(np.int16) - background).max(axis=2)[box] > 28
        # bridge one-pixel gaps (the neck, hair against the lawn) before finding the body
        bridged = Image.fromarray(moving.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))
        body = connected(np.asarray(bridged) > 0, (hh, hw)) & moving
        alpha = Image.fromarray((body * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(3))
        alpha = alpha.filter(ImageFilter.GaussianBlur(1.0))
        cell = Image.fromarray(np.ascontiguousarray(frames[i][box])).convert("RGBA")
        cell.putalpha(alpha)
        cells.append(cell)
    boxes = np.array([cell.getbbox() for cell in cells])  # the union of their opaque parts
    left, top = boxes[:, :2].min(axis=0)
    right, bottom = boxes[:, 2:].max(axis=0)
    size = (round((right - left) * SPRITE_SCALE), round((bottom - top) * SPRITE_SCALE))
    cells = [
        c.crop((int(left), int(top), int(right), int(bottom))).resize(
            size, Image.Resampling.LANCZOS
        )
        for c in cells
    ]
    sheet = Image.new("RGBA", (cells[0].width * len(cells), cells[0].height))
    for k, cell in enumerate(cells):
        sheet.paste(cell, (k * cell.width, 0))
    sheet.save(out, optimize=True)


def build_textures(skimage_data: Path) -> None:
    """Grass and gravel (grey CC0 textures) for composed ground, and the horse silhouette."""
    for name in ("grass", "gravel"):
        texture = Image.open(skimage_data / f"{name}.png").convert("L").resize((256, 256))
        texture.save(HERE / f"{name}.jpg", quality=85, optimize=True)
    horse = Image.open(skimage_data / "horse.png").convert("RGBA")
    mask = np.asarray(horse)[..., 3] if horse.mode == "RGBA" else np.asarray(horse.convert("L"))
    # the silhouette is black on white with an opaque background: black is the horse
    luma = np.asarray(horse.convert("L"))
    silhouette = Image.fromarray(((luma < 128) & (mask > 0)).astype(np.uint8) * 255)
    silhouette = silhouette.crop(silhouette.getbbox()).resize((200, 164), Image.Resampling.LANCZOS)
    silhouette.convert("1").save(HERE / "horse_mask.png", optimize=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    opencv, skimage = Path(argv[0]), Path(argv[1])
    clip = next(opencv.rglob("vtest.avi"))
    frames = read_clip(clip)
    build_clip(frames, HERE / "entrance.mp4")
    build_walker(frames, HERE / "walker.png")
    build_textures(next(skimage.rglob("skimage/data")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
