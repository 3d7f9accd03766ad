"""Frame sources: real-looking moving scenes (never noise), folders and looping videos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from devices.scenes import (
    DEFAULT_SIZE,
    SCENE_NAMES,
    SCENES,
    ImageFolder,
    SyntheticScene,
    VideoFile,
    make_source,
)


def neighbour_correlation(frame: np.ndarray) -> float:
    """Correlation of horizontally adjacent pixels: ~0 for noise, close to 1 for photos."""
    gray = frame.astype(np.float32).mean(axis=2)
    return float(np.corrcoef(gray[:, :-1].ravel(), gray[:, 1:].ravel())[0, 1])


@pytest.mark.parametrize("scene", SCENE_NAMES)
def test_scene_moves_locally_over_a_stable_real_background(scene: str) -> None:
    assert DEFAULT_SIZE == (320, 240)  # a surveillance camera's, not the codec's 224x224
    source = SyntheticScene(scene, step_s=2.0, start_s=10.0)
    frames = [source.next_frame() for _ in range(4)]
    for frame in frames:
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        assert neighbour_correlation(frame) > 0.8, "looks like noise, not a photo"
    for before, after in zip(frames, frames[1:], strict=False):
        diff = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2)
        assert (diff > 40).mean() > 0.003, "nothing moved between frames"
        assert (diff > 25).mean() < 0.25, "the background did not stay put"
        assert 0 < np.median(diff) < 12, "sensor noise should differ every frame, slightly"


@pytest.mark.parametrize("scene", SCENE_NAMES)
def test_scenes_render_at_vga_and_are_deterministic(scene: str) -> None:
    one, two = SyntheticScene(scene, (640, 480), seed=3), SyntheticScene(scene, (640, 480), seed=3)
    for t in (0.0, 31.5):
        frame = one.frame_at(t)
        assert frame.shape == (480, 640, 3)
        np.testing.assert_array_equal(frame, two.frame_at(t))
    assert SCENES[scene].title  # each scene says what it shows


def test_entrance_plays_the_real_clip_by_scene_time_and_loops() -> None:
    source = SyntheticScene("entrance", noise_sigma=0)
    clip = source._clip
    assert clip is not None and clip.fps == 5 and clip.count > 300  # 79 s of footage
    loop_s = clip.count / clip.fps
    np.testing.assert_array_equal(source.frame_at(12.0), source.frame_at(12.0 + loop_s))
    np.testing.assert_array_equal(source.frame_at(12.0), source.frame_at(12.1))  # same frame
    assert not np.array_equal(source.frame_at(12.0), source.frame_at(12.2))  # the next one
    np.testing.assert_array_equal(source.frame_at(3.0), source.frame_at(3.0))  # back in time


def test_the_fence_stays_in_front_of_the_horses_behind_it() -> None:
    """A horse walking behind the paddock fence is hidden where the rails are."""
    scene = SyntheticScene("paddock", noise_sigma=0)
    rgb, alpha = scene._layer
    rails = alpha > 0.99
    empty = scene.frame_at(400.0).astype(np.int16)  # no sprite near the rails at 400 s?
    with_horse = [scene.frame_at(t).astype(np.int16) for t in np.arange(0.0, 90.0, 3.0)]
    changed = [np.abs(f - empty).max(axis=2) > 30 for f in with_horse]
    assert any(c[~rails].mean() > 0.002 for c in changed), "no horse went by"
    # behind the fence: the rails' own pixels keep the fence's colour (daylight aside)
    for frame in with_horse:
        fence = np.abs(frame[rails] - rgb[rails]).max(axis=1)
        assert fence.max() < 14


def test_neighbouring_cameras_see_different_scenes() -> None:
    frames = [make_source("synthetic", (96, 72), index=i).next_frame() for i in range(3)]
    assert {f.shape for f in frames} == {(72, 96, 3)}
    means = [f.reshape(-1, 3).mean(axis=0) for f in frames]
    assert min(np.abs(a - b).max() for i, a in enumerate(means) for b in means[i + 1 :]) > 5
    assert isinstance(make_source("synthetic:barnyard", (96, 72)), SyntheticScene)


def test_unknown_sources_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError):
        make_source("synthetic:moon")
    with pytest.raises(ValueError):
        make_source(str(tmp_path / "missing.mp4"))


def test_image_folder_loops_in_name_order(tmp_path) -> None:
    for i, colour in enumerate([(200, 0, 0), (0, 200, 0)]):
        Image.new("RGB", (64, 40), colour).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    source = make_source(str(tmp_path), (32, 32))
    assert isinstance(source, ImageFolder)
    reds = [int(source.next_frame()[0, 0, 0]) for _ in range(4)]
    assert reds == [200, 0, 200, 0]


def test_video_file_loops(tmp_path) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    scene = SyntheticScene("paddock", (64, 48))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(scene.next_frame(), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    source = make_source(str(path), (32, 24))
    assert isinstance(source, VideoFile)
    frames = [source.next_frame() for _ in range(22)]
    assert all(f.shape == (24, 32, 3) for f in frames)
    assert source.loops == 2
    np.testing.assert_array_equal(frames[0], frames[10])
    assert not np.array_equal(frames[0], frames[5])
    # the next camera starts elsewhere in the clip, so cameras are not in lockstep
    np.testing.assert_array_equal(make_source(str(path), (32, 24), index=1).next_frame(), frames[5])
    np.testing.assert_array_equal(make_source(str(path), (32, 24), index=3).next_frame(), frames[0])


def test_fleet_takes_one_source_per_camera(tmp_path) -> None:
    """The demo gives each camera the scene its name promises (not the next in turn)."""
    from devices.fleet import Fleet

    specs = ["synthetic:entrance", "synthetic:paddock"]
    fleet = Fleet(["gate", "field"], "mqtt://127.0.0.1:1", source=specs, state_dir=tmp_path)
    assert [c.source.scene for c in fleet.cameras] == ["entrance", "paddock"]
    assert all(c.source.size == (320, 240) for c in fleet.cameras)
    with pytest.raises(ValueError, match="2 sources for 3 cameras"):
        Fleet(["a", "b", "c"], "mqtt://127.0.0.1:1", source=specs, state_dir=tmp_path)


def test_fleet_cli_answers_a_bad_size_or_scene_in_one_line(capsys) -> None:
    from devices.fleet import main

    with pytest.raises(SystemExit) as exit_:
        main(["--size", "320by240"])
    assert exit_.value.code == 2
    assert "'320by240' is not WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["--source", "synthetic:moon", "--broker", "mqtt://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "fleet: cannot start: unknown scene 'moon'; choose one of paddock, barnyard, carpark, "
        "entrance"
    )
