from __future__ import annotations

import numpy as np
import pytest
import torch

# The machine has 2 cores shared with training and other work: one thread is faster here.
torch.set_num_threads(1)


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
