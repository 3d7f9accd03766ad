"""Decoder revisions (``mcucoder.decoders``): a better decoder for the same packets."""

from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest
import torch

from mcucoder.codec import Codec
from mcucoder.decoders import BASE, load_decoder, release_decoder, revision_of
from mcucoder.registry import WEIGHTS_DIR, model_entry


def test_the_released_revision_decodes_the_same_packets(codec, photo):
    """Same model_id, same packet bytes; the base decoder stays reachable."""
    base = Codec.load(encoder="float", decoder=BASE)
    assert base.decoder_revision == BASE
    assert codec.decoder_revision == revision_of()
    assert codec.model_id == base.model_id
    packet = codec.encode(photo, channels=12)
    assert base.encode(photo, channels=12) == packet
    a, b = codec.decode(packet), base.decode(packet)
    assert a.shape == b.shape == photo.shape
    assert codec.decoder_revision != BASE  # the model ships a revision: a different decoder
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.1


def test_a_tampered_revision_file_is_refused(tmp_path):
    name, entry = model_entry(None)
    for f in WEIGHTS_DIR.glob(f"{name}*.pt"):
        shutil.copy(f, tmp_path / f.name)
    dec = torch.nn.Conv2d(1, 1, 1)  # any state that is not the released decoder
    torch.save({"decoder": dec.state_dict(), "decoder_config": "{}"}, tmp_path / "x.pt")
    bad = dict(entry, decoder={"revision": "x", "weights": "x.pt", "crc32": 1})
    with pytest.raises(ValueError, match="crc32"):
        load_decoder(bad, weights_dir=tmp_path)
    good_crc = zlib.crc32((tmp_path / "x.pt").read_bytes())
    with pytest.raises(ValueError, match="unknown decoder revision 'y'"):
        load_decoder(dict(bad, decoder=dict(bad["decoder"], crc32=good_crc)), "y", tmp_path)
    dec_base, rev = load_decoder(bad, BASE, tmp_path)
    assert rev == BASE and dec_base.config["blocks"] >= 1


def test_a_checkpoint_of_another_model_is_not_released(tmp_path):
    name, entry = model_entry(None)
    ck = tmp_path / "other.pt"
    torch.save({"base": name, "base_model_id": entry["model_id"] ^ 1}, ck)
    before = (WEIGHTS_DIR / "manifest.json").read_bytes()
    with pytest.raises(ValueError, match="was trained on"):
        release_decoder(ck, name, "zz")
    assert (WEIGHTS_DIR / "manifest.json").read_bytes() == before
    assert not (WEIGHTS_DIR / f"{name}.zz.pt").exists()
