"""Shared fixtures: locating ../shared (real FaceForensics++ clips, ImageNet backbone)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_shared_dir() -> Path | None:
    """Return the shared material folder: $FAKESCOPE_SHARED, else ../shared beside the repo."""
    env = os.environ.get("FAKESCOPE_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared")
    for path in candidates:
        if (path / "data" / "ffpp-mini").is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared folder; skipped where absent, except under CI=true where absence is a failure."""
    path = find_shared_dir()
    if path is None:
        reason = "../shared (or $FAKESCOPE_SHARED) with data/ffpp-mini is not present"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def ffpp_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "ffpp-mini"


@pytest.fixture(scope="session")
def real_video(ffpp_dir: Path) -> Path:
    """A real 480p FaceForensics++ clip (414 frames)."""
    return ffpp_dir / "original_sequences" / "youtube" / "c23" / "videos" / "469.mp4"


@pytest.fixture(scope="session")
def fake_video(ffpp_dir: Path) -> Path:
    """A Deepfakes manipulation of the same scene as ``real_video``."""
    return ffpp_dir / "manipulated_sequences" / "Deepfakes" / "c23" / "videos" / "469_481.mp4"


@pytest.fixture(scope="session")
def backbone_weights(shared_dir: Path) -> Path:
    return shared_dir / "weights" / "xception-imagenet-keras.safetensors"


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A checkpoint of the minute ``tiny_lstm`` model, untrained (load it with allow_untrained=True)."""
    import torch

    from fakescope.models import CheckpointMeta, create_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    return save_checkpoint(path, create_model("tiny_lstm"), CheckpointMeta(trained=False, threshold=0.5))
