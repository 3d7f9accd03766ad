from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The machine has 2 cores shared with training and other work: one thread is faster
    here. Restored afterwards so other test packages are not affected."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photo shipped with matplotlib (no downloads), cropped small for speed."""
    import matplotlib.cbook as cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        return np.asarray(im.convert("RGB"))[100:324, 150:374].copy()


@pytest.fixture(scope="session")
def codec():
    from mcucoder.codec import Codec

    return Codec.load(encoder="float")
