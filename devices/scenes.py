"""Frame sources for simulated cameras: what the image sensor of each device sees.

Every source yields HxWx3 ``uint8`` RGB frames of a fixed size, by default a surveillance
camera's 320x240 (640x480 works as well; the codec takes any multiple of 8). The scenes are
what a farm or a depot watches: real footage of a depot entrance with people walking
(``devices/assets/entrance.mp4``), and farm scenes composed from real textures with real
cut-outs moving through them now and then (a person walking, cut from that footage;
horses) and drawn ones (sheep, a pickup), still in between, under per-frame sensor noise
and slow daylight drift, so that the codec, the bitrate and motion detection (events, the
motion share of predicted frames) see statistics like a fixed camera's, never plain noise. Everything is deterministic: the same scene, seed and time give the same frame.
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
from PIL import Image, ImageDraw, ImageOps

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_SIZE = (320, 240)  # (width, height): QVGA, a surveillance camera's; VGA also works
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}

Size = tuple[int, int]  # (width, height)
Cutout = tuple[np.ndarray, np.ndarray]  # (rgb float32 HxWx3, alpha float32 HxW in 0..1)


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


# --- textures and drawn layers --------------------------------------------------------


@lru_cache(maxsize=8)
def _texture(name: str) -> np.ndarray:
    """A shipped grey texture, float32 with mean 1 (multiplies a colour)."""
    grey = np.asarray(Image.open(ASSETS / f"{name}.jpg").convert("L"), dtype=np.float32)
    return grey / grey.mean()


def _smooth(shape: tuple[int, int], cell: float, seed: int) -> np.ndarray:
    """Smooth value noise in 0..1 with features about ``cell`` pixels wide (clouds, patches)."""
    height, width = shape
    rng = np.random.default_rng(seed)
    grid = rng.random((max(2, round(height / cell) + 2), max(2, round(width / cell) + 2)))
    image = Image.fromarray((grid * 255).astype(np.uint8))
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), np.float32) / 255


def _lerp(a: tuple[float, ...], b: tuple[float, ...], t: np.ndarray) -> np.ndarray:
    """Colours ``a`` to ``b`` along ``t`` (any shape), as float32 (..., 3)."""
    a_, b_ = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a_ + (b_ - a_) * t[..., None].astype(np.float32)


def _sky(width: int, height: int, seed: int) -> np.ndarray:
    """A hazy daytime sky: blue at the top, pale at the horizon, soft clouds."""
    t = np.broadcast_to(np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None], (height, width))
    sky = _lerp((112, 152, 200), (206, 214, 222), t)
    clouds = np.clip((_smooth((height, width), width / 6, seed) - 0.45) * 2.5, 0, 1)
    return sky + (clouds * 50)[..., None]


def _ground(
    size: Size, top: int, texture: str, near: tuple[int, int, int], far: tuple[int, int, int],
    seed: int, zoom: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """Textured ground from row ``top`` (the horizon) down, in perspective: the texture
    shrinks towards the horizon, where it fades to its mean (no shimmering)."""
    width, height = size
    rows = height - top
    tex = _texture(texture)
    th, tw = tex.shape
    d = (np.arange(1, rows + 1, dtype=np.float32) / rows)[:, None]  # 0 far .. 1 near
    v = (tw * 0.35 * zoom / d).astype(np.int64) % th  # ground-plane depth
    u = ((np.arange(width)[None, :] - width / 2) / (d * width) * tw * 0.9 * zoom).astype(np.int64)
    detail = tex[v, u % tw]
    fade = np.clip(d * 5, 0, 1)
    shade = 1 + (detail - 1) * 0.45 * fade
    colour = _lerp(far, near, np.broadcast_to(d, (rows, width)))
    patches = _smooth((rows, width), width / 5, seed)[..., None]
    return colour * shade[..., None] * (0.85 + 0.3 * patches)


def _treeline(
    width: int, height: int, top: float, bottom: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distant trees and hedges: a dark, leafy band with an uneven top edge (rgb, mask)."""
    edge = top + (_smooth((1, width), width / 8, seed)[0] - 0.5) * height * 0.08
    rows = np.arange(bottom)[:, None]
    mask = (rows >= edge[None, :]).astype(np.float32)
    leaves = (
        _smooth((bottom, width), 2.5, seed + 1) * 0.6 + _smooth((bottom, width), 9, seed + 2) * 0.6
    )
    rgb = _lerp((38, 52, 34), (86, 104, 62), np.clip(leaves - 0.1, 0, 1))
    return rgb, mask


def _paddock(size: Size) -> tuple[np.ndarray, Cutout | None]:
    """A grass paddock behind a post-and-rail fence with a steel farm gate, a track through
    the gate, trees on the horizon; the fence is drawn over the animals behind it."""
    width, height = size
    horizon = round(0.34 * height)
    image = np.empty((height, width, 3), np.float32)
    image[:horizon] = _sky(width, horizon, seed=11)
    trees, mask = _treeline(width, height, 0.25 * height, horizon, seed=12)
    image[:horizon] = image[:horizon] * (1 - mask[..., None]) + trees * mask[..., None]
    image[horizon:] = _ground(
        size, horizon, "grass", (70, 112, 44), (128, 142, 92), seed=13, zoom=2
    )
    # the track: from far away through the gate to the camera, dry earth and gravel
    rows = np.arange(horizon, height, dtype=np.float32)
    d = (rows - horizon + 1) / (height - horizon)
    centre = width * (0.58 - 0.10 * d)
    half = width * (0.004 + 0.16 * d)
    xs = np.arange(width, dtype=np.float32)[None, :]
    track = np.clip((half[:, None] - np.abs(xs - centre[:, None])) / (1 + 3 * d[:, None]), 0, 1)
    earth = _ground(size, horizon, "gravel", (132, 112, 84), (150, 136, 112), seed=14, zoom=2)
    image[horizon:] += (earth - image[horizon:]) * track[..., None] * 0.9
    return image, _fence(size, fence_y=round(0.62 * height), gate=(0.44, 0.64))


def _fence(size: Size, fence_y: int, gate: tuple[float, float]) -> Cutout:
    """Weathered timber posts and three rails, a galvanised five-bar gate between ``gate``
    (fractions of the width), as a layer (rgb, alpha) over the whole frame."""
    width, height = size
    scale = 4  # drawn large, then reduced: smooth edges at any size
    w, h = width * scale, height * scale
    alpha = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(alpha)
    post_h, post_w, rail = 0.12 * h, max(2 * scale, 0.011 * w), max(scale, 0.008 * h)
    y = fence_y * scale
    g0, g1 = gate[0] * w, gate[1] * w
    x = -0.02 * w
    while x < w:
        if not g0 - post_w < x < g1 + post_w:
            draw.rectangle((x, y - post_h, x + post_w, y + 0.01 * h), fill=255)
        x += 0.085 * w
    for post in (g0 - 1.6 * post_w, g1):
        draw.rectangle((post, y - 1.1 * post_h, post + 1.6 * post_w, y + 0.012 * h), fill=255)
    for k in (0.85, 0.55, 0.25):  # rails, fractions of the post's height above ground
        top = y - k * post_h
        for a, b in ((0, g0 - post_w), (g1 + post_w, w)):
            draw.rectangle((a, top, b, top + rail), fill=255)
    timber = np.asarray(alpha.resize(size, Image.Resampling.BOX), np.float32) / 255
    steel = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(steel)
    bar = max(scale, 0.005 * h)
    top, bottom = y - 0.9 * post_h, y - 0.08 * post_h
    for k in range(5):
        bar_y = top + (bottom - top) * k / 4
        draw.rectangle((g0, bar_y, g1, bar_y + bar), fill=255)
    draw.line((g0, bottom, g1, top), fill=255, width=round(bar))
    draw.rectangle((g1 - 2 * bar, top, g1, bottom + bar), fill=255)
    metal = np.asarray(steel.resize(size, Image.Resampling.BOX), np.float32) / 255
    grain = _smooth((height, width), 1.5, 21)[..., None]
    rgb = _lerp((92, 76, 58), (140, 122, 98), _smooth((height, width), 3, 22)) * (0.8 + 0.4 * grain)
    rgb = rgb * (1 - metal[..., None]) + np.asarray((176, 182, 184), np.float32) * metal[..., None]
    return rgb, np.clip(timber + metal, 0, 1)


def _barnyard(size: Size) -> tuple[np.ndarray, Cutout | None]:
    """A farmyard: the red plank wall of a barn with its doors open, a feed silo, a hedge and
    the sky beyond, a gravel yard in front."""
    width, height = size
    ground_y, horizon = round(0.62 * height), round(0.46 * height)
    image = np.empty((height, width, 3), np.float32)
    image[:horizon] = _sky(width, horizon, seed=31)
    trees, mask = _treeline(width, height, 0.36 * height, horizon, seed=32)
    image[:horizon] = image[:horizon] * (1 - mask[..., None]) + trees * mask[..., None]
    image[horizon:] = _ground(
        size, horizon, "grass", (84, 118, 52), (128, 140, 92), seed=33, zoom=2
    )
    yard = _ground(size, ground_y, "gravel", (128, 120, 104), (136, 130, 112), seed=35, zoom=3)
    image[ground_y:] = yard
    layer = Image.new("RGB", (width * 4, height * 4))
    cover = Image.new("L", layer.size, 0)
    w, h = layer.size
    draw, edge = ImageDraw.Draw(layer), ImageDraw.Draw(cover)
    g = ground_y * 4
    # barn: roof edge, plank wall, white trim, open doors with a dark inside, a hay loft door
    wall = (-0.02 * w, 0.14 * h, 0.64 * w, g)
    edge.rectangle((wall[0], 0.08 * h, wall[2] + 0.02 * w, g), fill=255)
    draw.rectangle((wall[0], 0.08 * h, wall[2] + 0.02 * w, 0.15 * h), fill=(70, 66, 64))
    draw.rectangle(wall, fill=(150, 50, 38))
    plank = 0.024 * w
    for k in range(int(0.68 * w / plank) + 1):
        x = wall[0] + k * plank
        draw.line((x, wall[1], x, g), fill=(108, 34, 28), width=3)
    door = (0.16 * w, 0.30 * h, 0.40 * w, g)
    draw.rectangle(door, fill=(34, 28, 24))
    draw.rectangle((door[0] + 0.02 * w, g - 0.08 * h, door[2] - 0.03 * w, g), fill=(150, 130, 70))
    for x0 in (door[0] - 0.12 * w, door[2]):  # the doors, slid open, with their braces
        x1 = x0 + 0.12 * w
        draw.rectangle((x0, door[1], x1, g), fill=(140, 46, 36), outline=(236, 232, 224), width=8)
        draw.line((x0, door[1], x1, g), fill=(236, 232, 224), width=8)
        draw.line((x0, g, x1, door[1]), fill=(236, 232, 224), width=8)
    draw.rectangle(
        (0.46 * w, 0.20 * h, 0.56 * w, 0.32 * h),
        fill=(42, 36, 32),
        outline=(236, 232, 224),
        width=8,
    )
    # feed silo: a ribbed steel cylinder with a cone on top
    s0, s1 = 0.72 * w, 0.86 * w
    edge.rectangle((s0, 0.12 * h, s1, g), fill=255)
    edge.polygon(((s0, 0.12 * h), ((s0 + s1) / 2, 0.03 * h), (s1, 0.12 * h)), fill=255)
    for k in range(int(s1 - s0)):
        shade = 0.55 + 0.45 * math.sin(math.pi * (k + 0.5) / (s1 - s0)) ** 0.6
        tone = tuple(round(c * shade) for c in (196, 200, 204))
        draw.line((s0 + k, 0.12 * h, s0 + k, g), fill=tone)
    draw.polygon(((s0, 0.12 * h), ((s0 + s1) / 2, 0.03 * h), (s1, 0.12 * h)), fill=(150, 154, 158))
    for y in np.arange(0.16 * h, g, 0.035 * h):
        draw.line((s0, y, s1, y), fill=(120, 124, 128), width=3)
    built = np.asarray(layer.resize(size, Image.Resampling.BOX), np.float32)
    built_alpha = np.asarray(cover.resize(size, Image.Resampling.BOX), np.float32)[..., None] / 255
    weather = 0.82 + 0.36 * _smooth((height, width), 2, 34)[..., None]
    image = image * (1 - built_alpha) + built * weather * built_alpha
    # a mud track across the yard from the doors
    rows = np.arange(ground_y, height, dtype=np.float32)
    d = (rows - ground_y + 1) / (height - ground_y)
    xs = np.arange(width, dtype=np.float32)[None, :]
    mud = np.clip(
        (width * (0.05 + 0.12 * d)[:, None] - np.abs(xs - width * (0.28 + 0.1 * d)[:, None])) / 4,
        0,
        1,
    )
    image[ground_y:] *= 1 - 0.3 * mud[..., None]
    return image, None


# --- moving things --------------------------------------------------------------------

Path2D = Callable[[float], tuple[float, float, bool]]  # t_s -> (x, y) in 0..1, mirrored


def shuttle(y: float, period_s: float, phase: float = 0.0, bob: float = 0.0) -> Path2D:
    """Walk left to right and back across the frame at height ``y``, bobbing like a gait;
    mirrored (facing left) on the way back."""

    def at(t: float) -> tuple[float, float, bool]:
        u = ((t / period_s) + phase) % 1.0
        x = -0.2 + 1.4 * (2 * u if u < 0.5 else 2 - 2 * u)
        return x, y + bob * math.sin(t * 2 * math.pi * 1.5), u >= 0.5

    return at


def crossing(y: float, period_s: float, travel_s: float, phase: float = 0.0) -> Path2D:
    """Cross the frame once in ``travel_s`` every ``period_s`` (a vehicle passing), in
    alternate directions; out of sight in between."""

    def at(t: float) -> tuple[float, float, bool]:
        cycle, u = divmod(t / period_s + phase, 1.0)
        if u * period_s > travel_s:
            return -1.0, y, False
        x = -0.3 + 1.6 * (u * period_s / travel_s)
        back = int(cycle) % 2 == 1
        return (1.0 - x if back else x), y, back

    return at


def bouts(path: Path2D, every_s: float, for_s: float, phase: float = 0.0) -> Path2D:
    """Follow ``path`` for ``for_s`` seconds out of every ``every_s`` and stay where it
    stopped in between: an animal grazing between short walks, someone crossing the yard now
    and then (a ``shuttle`` walked a half period at a time waits out of sight). A fixed
    camera mostly watches a still scene; without the pauses every frame would be motion."""

    def at(t: float) -> tuple[float, float, bool]:
        cycle, u = divmod(t / every_s + phase, 1.0)
        return path(cycle * for_s + min(u * every_s, for_s))

    return at


@dataclass(frozen=True)
class SpriteSpec:
    """A moving object: its cut-out frames (animated at ``fps``, or one still), its height
    as a fraction of the frame's, its path, and whether the scene's foreground layer
    (a fence) is in front of it."""

    frames: Callable[[], list[Cutout]]
    height: float
    path: Path2D
    fps: float = 0.0
    behind: bool = False


@lru_cache(maxsize=1)
def _walker() -> list[Cutout]:
    """A woman walking (one gait cycle at 10 frames a second), cut from the entrance clip."""
    sheet = np.asarray(Image.open(ASSETS / "walker.png").convert("RGBA"), np.float32)
    cells = 12
    width = sheet.shape[1] // cells
    return [
        (sheet[:, k * width : (k + 1) * width, :3], sheet[:, k * width : (k + 1) * width, 3] / 255)
        for k in range(cells)
    ]


@lru_cache(maxsize=4)
def _horse(coat: tuple[int, int, int] = (112, 70, 42)) -> list[Cutout]:
    """The CC0 horse silhouette as a bay (or any ``coat``): darker legs, mane and tail, a
    lighter back, a coat texture."""
    mask = np.asarray(Image.open(ASSETS / "horse_mask.png").convert("L"), np.float32) / 255
    h, w = mask.shape
    rows = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    legs = np.clip((rows - 0.55) / 0.25, 0, 1)  # the lower body darkens to the hooves
    tone = 1.15 - 0.35 * rows - 0.5 * legs
    cols = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    extremities = np.clip((0.12 - cols) / 0.1, 0, 1) + np.clip((cols - 0.82) / 0.1, 0, 1) * (
        rows < 0.45
    )
    tone = tone * (1 - 0.45 * np.clip(extremities, 0, 1))
    fur = 0.9 + 0.2 * _smooth((h, w), 2, 41)
    rgb = np.asarray(coat, np.float32) * (tone * fur)[..., None]
    return [(rgb, mask)]


@lru_cache(maxsize=1)
def _sheep() -> list[Cutout]:
    """A sheep in profile: woolly off-white body, dark face and legs (drawn)."""
    w, h = 120, 80
    alpha = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(alpha)
    draw.ellipse((8, 10, 92, 58), fill=255)  # body
    for x in (22, 34, 66, 78):
        draw.rectangle((x, 50, x + 5, 78), fill=255)  # legs
    draw.ellipse((84, 14, 112, 40), fill=255)  # head
    draw.polygon(((86, 18), (80, 8), (92, 16)), fill=255)  # ear
    a = np.asarray(alpha, np.float32) / 255
    wool = 0.8 + 0.35 * _smooth((h, w), 3, 51)
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = np.asarray((214, 208, 192), np.float32) * wool[..., None]
    rgb[56:, :] = (48, 42, 38)  # legs
    rgb[:, 84:] = (54, 46, 40)  # face
    return [(rgb, a)]


VEHICLES = {  # profiles facing right, on a 180x70 grid: (body polygon, windows)
    "pickup": (
        (4, 26, 96, 26, 108, 4, 146, 4, 164, 26, 176, 30, 176, 54, 4, 54),
        ((104, 25, 112, 8, 128, 8, 128, 25), (132, 25, 132, 8, 144, 8, 156, 25)),
    ),
    "car": (
        (4, 30, 40, 28, 62, 8, 118, 8, 146, 28, 172, 32, 176, 40, 176, 54, 4, 54),
        ((66, 27, 76, 12, 96, 12, 96, 27), (100, 27, 100, 12, 116, 12, 136, 27)),
    ),
    "van": (
        (4, 4, 134, 4, 160, 24, 176, 30, 176, 54, 4, 54),
        ((138, 9, 154, 24, 138, 24),),
    ),
}


@lru_cache(maxsize=8)
def _vehicle(kind: str = "pickup", paint: tuple[int, int, int] = (40, 70, 52)) -> list[Cutout]:
    """A vehicle in profile, facing right (drawn): body, windows, lamp, bumper, wheels."""
    scale = 4
    body = Image.new("RGB", (180 * scale, 70 * scale))
    alpha = Image.new("L", body.size, 0)
    d, a = ImageDraw.Draw(body), ImageDraw.Draw(alpha)
    outline, windows = VEHICLES[kind]
    big = [v * scale for v in outline]
    d.polygon(big, fill=paint)
    a.polygon(big, fill=255)
    for window in windows:
        d.polygon([v * scale for v in window], fill=(110, 140, 162))
    d.rectangle([v * scale for v in (4, 36, 176, 38)], fill=tuple(round(c * 0.7) for c in paint))
    d.rectangle([v * scale for v in (168, 32, 176, 38)], fill=(240, 220, 160))  # head lamp
    d.rectangle([v * scale for v in (4, 32, 8, 38)], fill=(190, 40, 30))  # tail lamp
    d.rectangle([v * scale for v in (2, 48, 178, 54)], fill=(60, 60, 60))  # sills and bumpers
    for cx in (36, 144):
        wheel = [v * scale for v in (cx - 15, 40, cx + 15, 70)]
        d.ellipse(wheel, fill=(24, 24, 24))
        a.ellipse(wheel, fill=255)
        d.ellipse([v * scale for v in (cx - 7, 48, cx + 7, 62)], fill=(150, 150, 150))
    rgb = np.asarray(body.resize((180, 70), Image.Resampling.BOX), np.float32)
    shine = np.linspace(1.15, 0.8, 70, dtype=np.float32)[:, None, None]
    return [
        (rgb * shine, np.asarray(alpha.resize((180, 70), Image.Resampling.BOX), np.float32) / 255)
    ]


def _place(image: np.ndarray, cutout: Cutout, height: int, cx: float, bottom: float) -> None:
    """Paste a cut-out ``height`` pixels tall into a composed image (a parked car)."""
    rgb, alpha = cutout
    width = max(2, round(rgb.shape[1] * height / rgb.shape[0]))
    rgb_s = np.asarray(
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).resize((width, height)), np.float32
    )
    alpha_s = np.asarray(
        Image.fromarray((alpha * 255).astype(np.uint8)).resize((width, height)), np.float32
    )
    top, left = round(bottom - height), round(cx - width / 2)
    view = np.zeros_like(image[..., 0])
    h, w = view.shape
    y0, y1, x0, x1 = max(top, 0), min(top + height, h), max(left, 0), min(left + width, w)
    if y0 < y1 and x0 < x1:
        a = alpha_s[y0 - top : y1 - top, x0 - left : x1 - left, None] / 255
        src = rgb_s[y0 - top : y1 - top, x0 - left : x1 - left]
        image[y0:y1, x0:x1] = image[y0:y1, x0:x1] * (1 - a) + src * a


def _carpark(size: Size) -> tuple[np.ndarray, Cutout | None]:
    """A depot's car park: a clad warehouse with a roller door, cars parked along it, a
    painted lane across the asphalt."""
    width, height = size
    horizon, wall_foot = round(0.30 * height), round(0.50 * height)
    image = np.empty((height, width, 3), np.float32)
    image[:horizon] = _sky(width, horizon, seed=61)
    trees, mask = _treeline(width, height, 0.20 * height, horizon, seed=62)
    image[:horizon] = image[:horizon] * (1 - mask[..., None]) + trees * mask[..., None]
    image[horizon:] = _ground(
        size, horizon, "gravel", (92, 94, 98), (112, 114, 116), seed=63, zoom=3
    )
    layer = Image.new("RGB", (width * 4, height * 4))
    cover = Image.new("L", layer.size, 0)
    w, h = layer.size
    draw, edge = ImageDraw.Draw(layer), ImageDraw.Draw(cover)
    g = wall_foot * 4
    wall = (-0.02 * w, 0.12 * h, 0.78 * w, g)
    edge.rectangle(wall, fill=255)
    draw.rectangle(wall, fill=(150, 160, 154))  # cladding
    for x in np.arange(wall[0], wall[2], 0.016 * w):
        draw.line((x, wall[1], x, g), fill=(126, 136, 130), width=4)
    draw.rectangle((wall[0], wall[1], wall[2], 0.17 * h), fill=(52, 60, 66))  # fascia
    door = (0.08 * w, 0.24 * h, 0.28 * w, g)
    draw.rectangle(door, fill=(188, 190, 186))  # roller door
    for y in np.arange(door[1], g, 0.012 * h):
        draw.line((door[0], y, door[2], y), fill=(160, 162, 158), width=3)
    draw.rectangle((0.36 * w, 0.30 * h, 0.41 * w, g), fill=(40, 66, 110))  # staff door
    draw.rectangle((0.46 * w, 0.24 * h, 0.62 * w, 0.32 * h), fill=(60, 72, 80))  # windows
    built = np.asarray(layer.resize(size, Image.Resampling.BOX), np.float32)
    built_alpha = np.asarray(cover.resize(size, Image.Resampling.BOX), np.float32)[..., None] / 255
    weather = 0.9 + 0.2 * _smooth((height, width), 2, 64)[..., None]
    image = image * (1 - built_alpha) + built * weather * built_alpha
    # a kerb along the wall, the lane's edge line
    image[wall_foot : wall_foot + max(1, height // 80)] = (170, 170, 164)
    line_y = round(0.66 * height)
    image[line_y : line_y + max(1, height // 120)] = (222, 222, 210)
    for kind, paint, cx in (
        ("car", (170, 172, 176), 0.47),
        ("van", (236, 236, 232), 0.79),
        ("car", (40, 52, 96), 1.10),
    ):
        _place(image, _vehicle(kind, paint)[0], round(0.15 * height), cx * width, 0.60 * height)
    return image, None


# --- scenes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneSpec:
    """What a fixed camera looks at: a still composed background (and a foreground layer in
    front of some sprites), or a shipped clip; the things moving through it."""

    title: str
    sprites: tuple[SpriteSpec, ...] = ()
    compose: Callable[[Size], tuple[np.ndarray, Cutout | None]] | None = None
    clip: str | None = None  # an asset played by scene time instead of a still background


SCENES: dict[str, SceneSpec] = {
    "paddock": SceneSpec(
        "a paddock gate: horses grazing behind the fence, sheep in front, each walking a "
        "little now and then",
        (
            SpriteSpec(
                _horse, 0.15, bouts(shuttle(0.50, 90.0, bob=0.002), 120.0, 14.0), behind=True
            ),
            SpriteSpec(
                lambda: _horse((60, 44, 34)),
                0.08,
                bouts(shuttle(0.40, 150.0, phase=0.6), 150.0, 10.0, phase=0.5),
                behind=True,
            ),
            SpriteSpec(_sheep, 0.10, bouts(shuttle(0.80, 70.0, phase=0.1, bob=0.003), 70.0, 20.0)),
            SpriteSpec(
                _sheep,
                0.09,
                bouts(shuttle(0.86, 110.0, phase=0.75, bob=0.003), 110.0, 8.0, phase=0.3),
            ),
        ),
        compose=_paddock,
    ),
    "barnyard": SceneSpec(
        "a barn yard: now and then someone crossing the yard, the pickup coming and going",
        (
            SpriteSpec(_walker, 0.16, bouts(shuttle(0.58, 64.0), 150.0, 32.0), fps=10.0),
            SpriteSpec(_vehicle, 0.22, crossing(0.72, 150.0, 12.0, phase=0.6)),
            SpriteSpec(_walker, 0.30, bouts(shuttle(0.80, 40.0), 110.0, 20.0, 0.5), fps=10.0),
        ),
        compose=_barnyard,
    ),
    "carpark": SceneSpec(
        "a depot car park: cars parked by the warehouse, now and then a car or a van coming "
        "or going, someone walking to the door",
        (
            SpriteSpec(_walker, 0.20, bouts(shuttle(0.56, 56.0), 140.0, 28.0), fps=10.0),
            SpriteSpec(_walker, 0.30, bouts(shuttle(0.80, 44.0), 120.0, 22.0, 0.5), fps=10.0),
            SpriteSpec(lambda: _vehicle("car", (150, 34, 30)), 0.17, crossing(0.74, 150.0, 10.0)),
            SpriteSpec(
                lambda: _vehicle("van", (224, 226, 222)), 0.22, crossing(0.84, 240.0, 14.0, 0.5)
            ),
        ),
        compose=_carpark,
    ),
    "entrance": SceneSpec(
        "a depot entrance, real footage: people walking past the road and the lawns",
        clip="entrance.mp4",
    ),
}
SCENE_NAMES = tuple(SCENES)


@lru_cache(maxsize=16)
def _composed(scene: str, size: Size) -> tuple[np.ndarray, Cutout | None]:
    """A scene's still background at ``size`` with its foreground layer already on it, and
    that layer (cached: a fleet shares one copy per size)."""
    compose = SCENES[scene].compose
    assert compose is not None
    background, layer = compose(size)
    if layer is not None:
        rgb, alpha = layer
        background = background * (1 - alpha[..., None]) + rgb * alpha[..., None]
    return np.clip(background, 0, 255).astype(np.uint8), layer


class _Clip:
    """A shipped clip played by scene time and looped, decoded on demand (PyAV)."""

    def __init__(self, path: Path, size: Size) -> None:
        import av

        self.path, self.size = path, size
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            self.fps = float(stream.average_rate or 1)
            self.count = stream.frames or sum(1 for _ in container.decode(stream))
        self._decoder: Iterator[object] | None = None
        self._index, self._frame = -1, np.zeros((size[1], size[0], 3), np.uint8)

    def _rewind(self) -> None:
        import av

        container = av.open(str(self.path))
        self._decoder = container.decode(video=0)
        self._index = -1

    def at(self, t: float) -> np.ndarray:
        wanted = int(math.floor(t * self.fps)) % self.count
        if wanted == self._index:
            return self._frame
        if self._decoder is None or wanted < self._index:
            self._rewind()
        assert self._decoder is not None
        frame = None
        while self._index < wanted:
            frame = next(self._decoder)
            self._index += 1
        if (frame.width, frame.height) == self.size:  # type: ignore[attr-defined]
            self._frame = frame.to_ndarray(format="rgb24")  # type: ignore[attr-defined]
        else:
            self._frame = fit_image(frame.to_image(), self.size)  # type: ignore[attr-defined]
        return self._frame


class SyntheticScene:
    """A fixed camera looking at one of ``SCENES``.

    Scene time advances ``step_s`` seconds per captured frame (deterministic for tests);
    sensor noise (Gaussian, ``noise_sigma`` levels) and a slow light drift are per frame.
    """

    def __init__(
        self,
        scene: str = "paddock",
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
        spec = SCENES[scene]
        self.title = spec.title
        self._clip = _Clip(ASSETS / spec.clip, size) if spec.clip else None
        self._background, self._layer = (
            (np.zeros((size[1], size[0], 3), np.uint8), None)
            if self._clip
            else _composed(scene, size)
        )
        self._gain, self._lit = 0, self._background.astype(np.int16)
        self._sprites = [(self._scaled(spec), spec) for spec in spec.sprites]
        self._rng = np.random.default_rng(seed)
        self._t = start_s

    def _scaled(self, spec: SpriteSpec) -> list[tuple[np.ndarray, np.ndarray]]:
        scaled = []
        h = max(2, round(spec.height * self.size[1]))
        for rgb, alpha in spec.frames():
            w = max(2, round(rgb.shape[1] * h / rgb.shape[0]))
            rgb_s = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).resize(
                (w, h), Image.Resampling.BILINEAR
            )
            alpha_s = Image.fromarray((alpha * 255).astype(np.uint8)).resize(
                (w, h), Image.Resampling.BILINEAR
            )
            scaled.append(
                (np.asarray(rgb_s, np.float32), np.asarray(alpha_s, np.float32)[..., None] / 255)
            )
        return scaled

    def frame_at(self, t: float) -> np.ndarray:
        """The frame at scene time ``t`` seconds (noise drawn from this scene's generator).

        Integer arithmetic and a shared noise bank keep this near a millisecond at 320x240:
        a fleet renders hundreds of frames a second on one core.
        """
        if self._clip is not None:
            frame = self._clip.at(t).astype(np.int16)
        else:
            gain = round(256 * (1.0 + 0.04 * math.sin(2 * math.pi * t / 300.0)))  # daylight
            if gain != self._gain:
                self._lit = ((self._background.astype(np.int32) * gain) >> 8).astype(np.int16)
                self._gain = gain
            frame = self._lit.copy()
        for frames, spec in self._sprites:
            drawn = self._draw(frame, frames, spec, t)
            if drawn and spec.behind and self._layer is not None:
                # the fence (already on the background) goes back over what passed behind it
                rgb, alpha = self._layer
                a = alpha[drawn][..., None]
                lit = rgb[drawn] * (self._gain / 256 if self._clip is None else 1.0)
                frame[drawn] = frame[drawn] * (1.0 - a) + a * lit
        if self.noise_sigma > 0:
            height, width = frame.shape[:2]
            bank = _noise_bank(self.size, self.noise_sigma)
            k, dy, dx = self._rng.integers((len(bank), NOISE_MARGIN, NOISE_MARGIN))
            frame += bank[k, dy : dy + height, dx : dx + width]
        np.clip(frame, 0, 255, out=frame)
        return frame.astype(np.uint8)

    def _draw(
        self, frame: np.ndarray, frames: list, spec: SpriteSpec, t: float
    ) -> tuple[slice, slice] | None:
        """Draw one sprite where its path puts it at ``t``; the region drawn, if any."""
        x, y, mirrored = spec.path(t)
        rgb, alpha = frames[int(t * spec.fps) % len(frames)] if spec.fps else frames[0]
        if mirrored:
            rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
        height, width = frame.shape[:2]
        left = round(x * width - rgb.shape[1] / 2)
        return _blend(frame, rgb, alpha, left, round(y * height - rgb.shape[0] / 2))

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


def _blend(
    frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, left: int, top: int
) -> tuple[slice, slice] | None:
    """Alpha-composite a sprite onto ``frame`` in place, clipped to the frame; the region."""
    fh, fw = frame.shape[:2]
    sh, sw = rgb.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + sw, fw), min(top + sh, fh)
    if x0 >= x1 or y0 >= y1:
        return None
    src = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    a = alpha[src]
    frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1.0 - a) + a * rgb[src]
    return slice(y0, y1), slice(x0, x1)


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
