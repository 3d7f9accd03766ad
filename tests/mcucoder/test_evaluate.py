from __future__ import annotations

import numpy as np
import pytest

from mcucoder.evaluate import _pchip, bd_rate, overlap


def _curve(rates, quality):
    return [{"bpp": r, "psnr": q, "ms_ssim": q / 50} for r, q in zip(rates, quality, strict=True)]


def test_bd_rate_of_known_shifts():
    anchor = _curve([0.2, 0.4, 0.8, 1.6], [25, 29, 33, 37])
    assert abs(bd_rate(anchor, anchor, "psnr")) < 1e-9
    half = _curve([0.1, 0.2, 0.4, 0.8], [25, 29, 33, 37])
    assert abs(bd_rate(anchor, half, "psnr") + 50) < 1e-6
    assert overlap(anchor, half, "psnr") == [25, 37]
    assert bd_rate(anchor, _curve([0.1, 0.2], [40, 41]), "psnr") is None  # no overlap


def test_non_improving_points_are_ignored():
    anchor = _curve([0.2, 0.4, 0.8], [25, 30, 35])
    flat = _curve([0.2, 0.4, 0.8, 1.0], [25, 30, 35, 34.9])  # last point adds nothing
    assert abs(bd_rate(anchor, flat, "psnr")) < 1e-9


def test_pchip_is_monotone_and_interpolates():
    x = np.array([0.0, 1.0, 1.1, 3.0])
    y = np.array([0.0, 1.0, 3.0, 3.2])
    xi = np.linspace(0, 3, 301)
    yi = _pchip(x, y, xi)
    assert np.all(np.diff(yi) >= -1e-12)
    assert np.allclose(_pchip(x, y, x), y)


def test_jpeg_at_rate_follows_the_jpeg_curve():
    from mcucoder.evaluate import jpeg_at_rate

    jpeg = [{"quality": q, "bpp": 0.1 * q, "psnr": 20 + 2 * q} for q in (1, 2, 4, 8)]
    report = {"curves": {"jpeg": jpeg}}
    assert jpeg_at_rate(report, 0.4) == pytest.approx(28.0)
    between = jpeg_at_rate(report, 0.3)
    assert 24.0 < between < 28.0
    assert jpeg_at_rate(report, 0.05) is None and jpeg_at_rate(report, 0.9) is None
