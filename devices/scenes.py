"""Frame sources for simulated cameras: what the image sensor of each device sees.

Every source yields HxWx3 ``uint8`` RGB frames of a fixed size. The synthetic scenes
composite real photographs (``devices/assets``, CC0 / public domain) with moving objects
cut from other real photos and per-frame sensor noise, so that the codec, the bitrate and
motion detection see statistics like a fixed camera's, never plain noise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_SIZE = (224, 224)  # (width, height): the codec's native training resolution
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}

Size = tuple[int, int]  # (width, height)


class FrameSource(Protocol):
    """Anything a camera can capture from."""

    size: Size

    def next_frame(self) -> np.ndarray:
        """The next HxWx3 uint8 RGB frame."""
        ...


def fit_image(image: Image.Image, size: Size) -> np.ndarray:
    """Scale and centre-crop ``image`` to fill ``size`` exactly, as a sensor crop would."""
    fitted = ImageOps.fit(image.convert("RGB"), size, Image.Resampling.BILINEAR)
    return np.asarray(fitted, dtype=np.uint8)


@lru_cache(maxsize=32)
def _asset(name: str, size: Size | None = None) -> np.ndarray:
    """A shipped photo as an array (cached: a fleet shares one copy per size)."""
    image = Image.open(ASSETS / name)
    if size is None:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    return fit_image(image, size)


# --- synthetic scenes ---------------------------------------------------------------

Path2D = Callable[[float], tuple[float, float, bool]]  # t_s -> (x, y) in 0..1, mirrored


def shuttle(y: float, period_s: float, phase: float = 0.0, bob: float = 0.0) -> Path2D:
    """Walk left to right and back across the frame at height ``y``, bobbing like a gait."""

    def at(t: float) -> tuple[float, float, bool]:
        u = ((t / period_s) + phase) % 1.0
        x = -0.2 + 1.4 * (2 * u if u < 0.5 else 2 - 2 * u)
        return x, y + bob * math.sin(t * 2 * math.pi * 1.5), u >= 0.5

    return at


def orbit(cx: float, cy: float, rx: float, ry: float, period_s: float) -> Path2D:
    """Circle around a point, as something being moved around a table would."""

    def at(t: float) -> tuple[float, float, bool]:
        a = 2 * math.pi * t / period_s
        return cx + rx * math.cos(a), cy + ry * math.sin(a), math.sin(a) > 0

    return at


@dataclass(frozen=True)
class SpriteSpec:
    """A moving object: a cut-out of a real photo, its size (fraction of frame height)."""

    cutout: Callable[[], tuple[np.ndarray, np.ndarray]]  # () -> (rgb float HxWx3, alpha HxW)
    height: float
    path: Path2D


def _ellipse_cutout(
    asset: str, box: tuple[int, int, int, int]
) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """A soft-edged ellipse cut from ``box`` (left, top, right, bottom) of a shipped photo."""

    def cut() -> tuple[np.ndarray, np.ndarray]:
        left, top, right, bottom = box
        rgb = _asset(asset)[top:bottom, left:right].astype(np.float32)
        h, w = rgb.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        r = np.hypot((xx - w / 2 + 0.5) / (w / 2), (yy - h / 2 + 0.5) / (h / 2))
        alpha = np.clip((1.0 - r) / 0.15, 0.0, 1.0).astype(np.float32)
        return rgb, alpha

    return cut


def _horse_cutout() -> tuple[np.ndarray, np.ndarray]:
    """The CC0 horse silhouette filled with real fur from the cat photo, darkened."""
    mask = np.asarray(Image.open(ASSETS / "horse_mask.png").convert("L"), dtype=np.float32) / 255
    h, w = mask.shape
    fur = _asset("cat.jpg")[10 : 10 + h, 40 : 40 + w].astype(np.float32) * 0.55
    return fur, mask


SCENES: dict[str, tuple[str, tuple[SpriteSpec, ...]]] = {
    # a night launch pad with horses crossing at two distances
    "launchpad": (
        "launchpad.jpg",
        (
            SpriteSpec(_horse_cutout, 0.30, shuttle(0.80, 40.0, bob=0.008)),
            SpriteSpec(_horse_cutout, 0.14, shuttle(0.70, 65.0, phase=0.45, bob=0.004)),
        ),
    ),
    # a café table with a curious cat wandering in
    "cafe": (
        "cafe.jpg",
        (SpriteSpec(_ellipse_cutout("cat.jpg", (95, 30, 235, 200)), 0.45, shuttle(0.55, 50.0)),),
    ),
    # a cat at home with a cup being moved around in front of it
    "cat": (
        "cat.jpg",
        (
            SpriteSpec(
                _ellipse_cutout("cafe.jpg", (90, 20, 230, 150)),
                0.30,
                orbit(0.5, 0.7, 0.35, 0.12, 30.0),
            ),
        ),
    ),
}
SCENE_NAMES = tuple(SCENES)


class SyntheticScene:
    """A fixed camera looking at a real photo while real-looking objects move through it.

    Scene time advances ``step_s`` seconds per captured frame (deterministic for tests);
    sensor noise (Gaussian, ``noise_sigma`` levels) and a slow light drift are per frame.
    """

    def __init__(
        self,
        scene: str = "launchpad",
        size: Size = DEFAULT_SIZE,
        *,
        step_s: float = 1.0,
        noise_sigma: float = 2.5,
        seed: int = 0,
        start_s: float = 0.0,
    ) -> None:
        if scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}; choose one of {', '.join(SCENES)}")
        self.scene, self.size, self.step_s, self.noise_sigma = scene, size, step_s, noise_sigma
        background, sprites = SCENES[scene]
        self._background = _asset(background, size)
        self._gain, self._lit = 0, self._background.astype(np.int16)
        self._sprites = [(self._scaled(spec), spec.path) for spec in sprites]
        self._rng = np.random.default_rng(seed)
        self._t = start_s

    def _scaled(self, spec: SpriteSpec) -> tuple[np.ndarray, np.ndarray]:
        rgb, alpha = spec.cutout()
        h = max(2, round(spec.height * self.size[1]))
        w = max(2, round(rgb.shape[1] * h / rgb.shape[0]))
        rgb_s = np.asarray(
            Image.fromarray(rgb.astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR),
            dtype=np.float32,
        )
        alpha_s = np.asarray(
            Image.fromarray((alpha * 255).astype(np.uint8)).resize(
                (w, h), Image.Resampling.BILINEAR
            ),
            dtype=np.float32,
        )
        return rgb_s, alpha_s[..., None] / 255

    def frame_at(self, t: float) -> np.ndarray:
        """The frame at scene time ``t`` seconds (noise drawn from this scene's generator).

        Integer arithmetic and a shared noise bank keep this near a millisecond at 224x224:
        a fleet renders hundreds of frames a second on one core.
        """
        gain = round(256 * (1.0 + 0.04 * math.sin(2 * math.pi * t / 300.0)))  # daylight drift
        if gain != self._gain:
            self._lit = ((self._background.astype(np.int32) * gain) >> 8).astype(np.int16)
            self._gain = gain
        frame = self._lit.copy()
        height, width = frame.shape[:2]
        for (rgb, alpha), path in self._sprites:
            x, y, mirrored = path(t)
            if mirrored:
                rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
            left = round(x * width - rgb.shape[1] / 2)
            _blend(frame, rgb, alpha, left, round(y * height - rgb.shape[0] / 2))
        if self.noise_sigma > 0:
            bank = _noise_bank(self.size, self.noise_sigma)
            k, dy, dx = self._rng.integers((len(bank), NOISE_MARGIN, NOISE_MARGIN))
            frame += bank[k, dy : dy + height, dx : dx + width]
        np.clip(frame, 0, 255, out=frame)
        return frame.astype(np.uint8)

    def next_frame(self) -> np.ndarray:
        frame = self.frame_at(self._t)
        self._t += self.step_s
        return frame


NOISE_MARGIN = 16


@lru_cache(maxsize=8)
def _noise_bank(size: Size, sigma: float, slabs: int = 4) -> np.ndarray:
    """Gaussian sensor noise (int16) a little larger than a frame: a random window of a
    random slab is new-looking noise per frame without drawing 150 k normals each time."""
    width, height = size
    rng = np.random.default_rng(20240607)
    shape = (slabs, height + NOISE_MARGIN, width + NOISE_MARGIN, 3)
    return np.rint(rng.standard_normal(shape, dtype=np.float32) * sigma).astype(np.int16)


def _blend(frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, left: int, top: int) -> None:
    """Alpha-composite a sprite onto ``frame`` in place, clipped to the frame."""
    fh, fw = frame.shape[:2]
    sh, sw = rgb.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + sw, fw), min(top + sh, fh)
    if x0 >= x1 or y0 >= y1:
        return
    src = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    a = alpha[src]
    frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1.0 - a) + a * rgb[src]


# --- recorded sources ---------------------------------------------------------------


class ImageFolder:
    """Loop over the images of a folder in name order (a time-lapse or a test set)."""

    def __init__(self, folder: str | Path, size: Size = DEFAULT_SIZE) -> None:
        self.size = size
        self.paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise ValueError(f"no images in {folder}")
        self._cycle = itertools.cycle(self.paths)

    def next_frame(self) -> np.ndarray:
        with Image.open(next(self._cycle)) as image:
            return fit_image(image, self.size)


class VideoFile:
    """Decode a video file with PyAV, looping at the end like a camera that never stops;
    ``/dev/videoN`` opens a live webcam (Video4Linux) instead, which does not loop."""

    def __init__(self, path: str | Path, size: Size = DEFAULT_SIZE, start_frame: int = 0) -> None:
        self.path, self.size = Path(path), size
        self.live = str(path).startswith("/dev/video")
        self.loops = 0
        frames = itertools.islice(self._open(), start_frame, None)
        first = next(frames, None)  # fail now, not at the first capture, on a bad file
        if first is None and start_frame:  # a clip shorter than the offset: start at 0
            frames = self._open()
            first = next(frames, None)
        if first is None:
            raise ValueError(f"no video frames in {self.path}")
        self._frames: Iterator[np.ndarray] = itertools.chain([first], frames)

    def _open(self) -> Iterator[np.ndarray]:
        import av  # PyAV: only needed for video sources

        with av.open(str(self.path), format="v4l2" if self.live else None) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield fit_image(frame.to_image(), self.size)

    def next_frame(self) -> np.ndarray:
        for _ in range(2):
            frame = next(self._frames, None)
            if frame is not None:
                return frame
            if self.live:
                break
            self._frames = self._open()
            self.loops += 1
        raise ValueError(f"no video frames in {self.path}")


def make_source(spec: str = "synthetic", size: Size = DEFAULT_SIZE, index: int = 0) -> FrameSource:
    """A source from a CLI spec: ``synthetic`` (scene chosen by ``index`` so neighbouring
    cameras differ), ``synthetic:SCENE``, a folder of images, a video file (camera ``index``
    starts ``5 * index`` frames in) or a webcam ``/dev/videoN``."""
    if spec == "synthetic" or spec.startswith("synthetic:"):
        scene = spec.partition(":")[2] or SCENE_NAMES[index % len(SCENE_NAMES)]
        # each camera starts at a different moment of its scene, with its own noise
        return SyntheticScene(scene, size, seed=index, start_s=7.0 * index)
    path = Path(spec)
    if path.is_dir():
        return ImageFolder(path, size)
    if path.is_file():
        return VideoFile(path, size, start_frame=5 * index)
    if spec.startswith("/dev/video") and path.exists():
        return VideoFile(path, size)
    raise ValueError(f"source {spec!r} is not 'synthetic', a folder, a video file or a webcam")
