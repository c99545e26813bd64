"""device.vision.preprocess: the lighting normalisation that training and the device share."""

from __future__ import annotations

import numpy as np
import pytest

from device.vision.preprocess import CropSpec, face_batch, normalize
from tests.fixtures_model import FER_MINI


@pytest.fixture(scope="module")
def fer_faces() -> np.ndarray:
    """Forty real fixture faces, uint8 (N, 48, 48)."""
    from train.data import load

    return load(FER_MINI)["PublicTest"].images[::3][:40]


def test_equalized_face_is_nearly_the_same_under_a_global_brightness_change(fer_faces: np.ndarray) -> None:
    clean = normalize(fer_faces, "equalize_hist")
    for gain in (0.4, 0.6, 1.3):
        dimmed = np.clip(fer_faces.astype(np.float32) * gain, 0, 255).round().astype(np.uint8)
        changed = normalize(dimmed, "equalize_hist")
        # Equalisation undoes the gain up to the grey levels the gain merged or clipped.
        assert np.abs(changed - clean).mean() < 0.04, gain
        # Scaling alone does not: the same change moves the unnormalised face far more.
        assert np.abs(normalize(dimmed) - normalize(fer_faces)).mean() > 0.05


def test_equalized_face_spans_the_full_range_whatever_the_light(fer_faces: np.ndarray) -> None:
    dark = (fer_faces // 4).astype(np.uint8)  # a face in a dim room: levels 0-63
    out = normalize(dark, "equalize_hist")
    assert out.dtype == np.float32 and out.shape == dark.shape
    assert (out.max(axis=(1, 2)) == 1.0).all() and (out.min(axis=(1, 2)) < 0.1).all()


def test_training_and_the_device_normalise_a_face_identically(fer_faces: np.ndarray) -> None:
    """The device crops a face out of a frame; training reads the 48x48 face. Both end in ``normalize``."""
    frame = np.full((200, 300), 90, np.uint8)
    frame[60:108, 100:148] = fer_faces[0]  # the face at its own size: the crop is the face itself
    spec = CropSpec(normalization="equalize_hist")
    device_input = face_batch(frame, [(100, 60, 48, 48)], spec)
    training_input = normalize(fer_faces[:1], "equalize_hist")[..., np.newaxis]
    np.testing.assert_array_equal(device_input, training_input)


def test_unknown_normalization_is_refused() -> None:
    with pytest.raises(ValueError, match="'clahe' is not supported; expected one of none, equalize_hist"):
        normalize(np.zeros((48, 48), np.uint8), "clahe")
