"""Joint fine-tuning options of ``python -m mcucoder train`` (issue 17): start from a
registered model and its decoder revision, the channel-gain hinge, the weight average,
per-k dev validation, resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mcucoder.models import N_CHANNELS, MCUCoder
from mcucoder.train import (
    candidate_checkpoint,
    channel_gain_hinge,
    evaluate_per_k,
    fit_prior,
    init_from_model,
    validate_dev,
)


def test_step_zero_decodes_as_the_release(codec, photo):
    net = MCUCoder()
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 255
    info = init_from_model(net, codec.name, x)
    assert info == {
        "model": codec.name,
        "model_id": codec.model_id,
        "decoder_revision": codec.decoder_revision,
    }
    net.eval()
    q = torch.from_numpy(codec.dequantise(codec.encode(photo)))[None]
    with torch.no_grad():
        mine = (net.decoder(q).clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
        latent = net.encoder(x)[0].numpy()
    np.testing.assert_allclose(mine, codec.decode(codec.encode(photo)), atol=1)
    np.testing.assert_allclose(latent, codec.latent(photo), atol=1e-4)


def test_prior_fit_is_the_laplace_maximum_likelihood():
    net = MCUCoder(width=32, blocks=1)
    x = torch.rand(2, 3, 64, 64)
    fit_prior(net, x)
    with torch.no_grad():
        y = net.encoder(x).transpose(0, 1).reshape(N_CHANNELS, -1)
    mu = net.prior.mu.detach()
    torch.testing.assert_close(mu, y.median(dim=1).values)
    b = (y - mu[:, None]).abs().mean(dim=1).clamp_min(0.05)
    torch.testing.assert_close(net.prior.log_b.detach().exp(), b)


def test_gain_hinge_only_charges_channels_that_add_too_little():
    mse_prev = torch.tensor([1e-3, 1e-3, 1e-3, 1e-3])
    # gains of 3 dB, 0.05 dB, 0 dB; the last sample has k = 1 (nothing to compare)
    mse = torch.tensor([1e-3 / 10**0.3, 1e-3 / 10**0.005, 1e-3, 5e-3], requires_grad=True)
    k = torch.tensor([5, 12, 11, 1])
    h = channel_gain_hinge(mse, mse_prev, k, 0.1)
    torch.testing.assert_close(h, torch.tensor([0.0, 0.05, 0.1, 0.0]), atol=1e-5, rtol=0)
    h.sum().backward()
    assert mse.grad[0] == 0 and mse.grad[3] == 0 and mse.grad[1] > 0 and mse.grad[2] > 0


def test_dev_validation_has_every_k_and_rising_bits(codec, photo):
    net = MCUCoder()
    init_from_model(net, codec.name, torch.rand(1, 3, 64, 64))
    images = np.stack([photo[:112, :112], photo[112:, 112:]])
    val = validate_dev(net, images)
    assert list(val) == list(range(1, N_CHANNELS + 1))
    bpp = [val[k]["bpp"] for k in val]
    assert all(b > 0 for b in bpp) and bpp == sorted(bpp)
    assert val[12]["psnr"] > val[1]["psnr"] + 5
    same = evaluate_per_k(net.decoder, images, codec_symbols(codec, images), ks=[12])
    assert abs(same[12]["psnr"] - val[12]["psnr"]) < 0.5  # float vs the codec's encoder


def codec_symbols(codec, images: np.ndarray) -> np.ndarray:
    return np.stack([codec.symbols(im) for im in images]).astype(np.float32)


@pytest.fixture
def data_dir(tmp_path, monkeypatch, photo):
    """A training and a dev list of real photos in a private data folder."""
    big = np.asarray(Image.fromarray(photo).resize((448, 448)))
    for i, img in enumerate((big, big[:, ::-1])):
        Image.fromarray(np.ascontiguousarray(img)).save(tmp_path / f"p{i}.png")
    for role in ("train", "dev"):
        (tmp_path / f"{role}.txt").write_text(f"{tmp_path / 'p0.png'}\n{tmp_path / 'p1.png'}\n")
    monkeypatch.setenv("STRATA_DATA", str(tmp_path))
    return tmp_path


def test_joint_fine_tune_runs_resumes_and_exports_its_average(data_dir, codec):
    from mcucoder.cli import main
    from mcucoder.export import load_checkpoint

    run = data_dir / "run"
    args = ["train", "--out", str(run), "--init-model", codec.name, "--qat-start", "0"]
    args += ["--batch", "2", "--crop", "112", "--ema", "0.9", "--gain-db", "0.1"]
    args += ["--dev", "224", "--log-every", "1", "--ckpt-every", "2", "--val-every", "2"]
    assert main([*args, "--steps", "2"]) == 0
    assert main([*args, "--steps", "3", "--resume"]) == 0
    ck = torch.load(run / "last.pt", weights_only=False)
    assert ck["step"] == 3 and ck["init"]["model_id"] == codec.model_id
    assert set(ck["ema"]) == set(ck["model"])
    assert not torch.equal(ck["ema"]["decoder.net.0.weight"], ck["model"]["decoder.net.0.weight"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3]
    assert log[0]["init"]["decoder_revision"] == codec.decoder_revision
    assert set(log[0]["dev"]) == set(log[2]["dev"]) == {str(k) for k in range(1, 13)}
    assert all("gain_short_db" in r for r in log[1:])
    config = json.loads((run / "config.json").read_text())
    assert config["init_model"] == codec.name and config["gain_db"] == 0.1
    cand = candidate_checkpoint(run / "last.pt", data_dir / "cand.pt")
    net, cand_ck = load_checkpoint(cand)
    assert "opt" not in cand_ck and cand_ck["step"] == 3
    torch.testing.assert_close(net.state_dict(), ck["ema"])


def test_a_candidate_is_measured_outside_the_released_weights(data_dir, codec, photo):
    from mcucoder.cli import main
    from mcucoder.evaluate import checkpoint_codecs
    from mcucoder.registry import MANIFEST

    run = data_dir / "run"
    args = ["train", "--out", str(run), "--init-model", codec.name, "--qat-start", "0"]
    assert main([*args, "--batch", "2", "--crop", "112", "--steps", "1", "--ema", "0.5"]) == 0
    released = MANIFEST.read_bytes()
    codecs = checkpoint_codecs(run / "last.pt", data_dir / "scratch", "cand", int8=False)
    assert MANIFEST.read_bytes() == released
    scratch = json.loads((data_dir / "scratch" / "manifest.json").read_text())
    cand = codecs["mcucoder-float"]
    assert scratch["models"]["cand"]["model_id"] == cand.model_id != codec.model_id
    ema = torch.load(run / "last.pt", weights_only=False)["ema"]
    torch.testing.assert_close(
        cand.decoder.state_dict()["net.0.weight"], ema["decoder.net.0.weight"]
    )
    image = cand.decode(cand.encode(photo))
    assert image.shape == photo.shape
    assert np.mean((image.astype(float) - photo) ** 2) < np.mean((photo - photo.mean()) ** 2) / 20


def test_evaluating_a_checkpoint_needs_a_scratch_folder(data_dir, capsys):
    from mcucoder.cli import main

    args = ["evaluate", "--images", str(data_dir), "--out", str(data_dir / "r.json")]
    assert main([*args, "--checkpoint", str(data_dir / "p0.png")]) == 1
    assert "--scratch" in capsys.readouterr().err
    assert not (data_dir / "r.json").exists()
