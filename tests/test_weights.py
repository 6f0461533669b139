"""Shipped-weights packaging and integrity checks (on a tiny model), and the real shipped weights on real videos."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fakescope.analysis import Scanner, WeightsError
from fakescope.analysis import scanner as scanner_module
from fakescope.outputs import scan_to_folder
from fakescope.models import CheckpointMeta, create_model, read_checkpoint_header, save_checkpoint
from fakescope.weights import (
    DEFAULT_WEIGHTS_NAME,
    RECORD_NAME,
    ShippedWeightsError,
    default_weights_path,
    package_weights,
    read_record,
    verify_default_weights,
    weights_dir,
)


@pytest.fixture()
def packaged(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    source = save_checkpoint(tmp_path / "trained.safetensors", create_model("tiny_lstm"),
                             CheckpointMeta(trained=True, threshold=0.37, info={"note": "test"}))
    directory = tmp_path / "weights"
    package_weights(source, directory, extra={"cross_validation": {"mean_video_auc": 0.5}})
    return directory


def test_package_writes_half_precision_weights_and_a_matching_record(packaged: Path) -> None:
    record = read_record(packaged)
    path = packaged / DEFAULT_WEIGHTS_NAME
    assert record["bytes"] == path.stat().st_size
    assert verify_default_weights(packaged) == path
    config, meta = read_checkpoint_header(path)
    assert config.name == "tiny_lstm" and meta.trained and meta.threshold == pytest.approx(0.37)
    assert meta.info["cross_validation"]["mean_video_auc"] == 0.5
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        dtypes = {handle.get_tensor(k).dtype for k in handle.keys()}
    assert torch.float32 not in dtypes and torch.float16 in dtypes


def test_altered_weights_are_refused(packaged: Path) -> None:
    path = packaged / DEFAULT_WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))
    with pytest.raises(ShippedWeightsError, match="sha256"):
        verify_default_weights(packaged)


def test_truncated_weights_and_missing_record_are_refused(packaged: Path) -> None:
    path = packaged / DEFAULT_WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ShippedWeightsError, match="truncated"):
        verify_default_weights(packaged)
    (packaged / RECORD_NAME).unlink()
    with pytest.raises(ShippedWeightsError, match="no integrity record"):
        verify_default_weights(packaged)


def test_detector_load_uses_verified_default_weights(packaged: Path, monkeypatch) -> None:
    monkeypatch.setattr(scanner_module, "default_weights_path", lambda: packaged / DEFAULT_WEIGHTS_NAME)
    detector = Scanner.load(device="cpu")
    assert detector.threshold == pytest.approx(0.37)
    assert detector.meta.sha256 == read_record(packaged)["sha256"]
    record = json.loads((packaged / RECORD_NAME).read_text())
    record["sha256"] = "0" * 64
    (packaged / RECORD_NAME).write_text(json.dumps(record))
    with pytest.raises(WeightsError, match="altered"):
        Scanner.load(device="cpu")


def test_untrained_checkpoint_cannot_be_packaged(tiny_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(ShippedWeightsError, match="not a trained"):
        package_weights(tiny_weights, tmp_path / "weights")


# --- the weights this build ships -------------------------------------------------------------------------------
def shipped() -> Path:
    path = default_weights_path()
    if path is None:
        pytest.fail(f"this build ships no weights in {weights_dir()}")
    return path


def test_shipped_weights_are_one_small_verified_file_of_the_design_model() -> None:
    path = verify_default_weights()
    assert path == shipped()
    assert path.stat().st_size <= 60 * 1024 * 1024
    config, meta = read_checkpoint_header(path)
    assert config.backbone == "legacy_xception" and config.rnn in ("lstm", "gru")
    assert config.conv_channels == (128, 256) and config.head_dims == (512, 256)
    assert meta.trained and 0.0 < meta.threshold < 1.0
    assert meta.info["cross_validation"]["folds"], "the record carries the cross-validation figures"


@pytest.mark.shared
@pytest.mark.slow
def test_shipped_weights_put_a_real_and_a_fake_shared_video_on_the_right_side(real_video, fake_video, tmp_path):
    from fakescope.video import FrameSelection

    from fakescope.options import OutputOptions

    detector = Scanner.load(device="cpu", selection=FrameSelection.from_options(frames=32))
    only_tables = OutputOptions(annotate=False, plot=False, report=False)
    real = scan_to_folder(detector, real_video, tmp_path / "real", only_tables)
    fake = scan_to_folder(detector, fake_video, tmp_path / "fake", only_tables)
    assert real.p_fake is not None and fake.p_fake is not None
    assert real.p_fake < detector.threshold <= fake.p_fake, (real.p_fake, fake.p_fake, detector.threshold)
    assert (real.verdict, fake.verdict) == ("real", "fake")
    assert real.model["sha256"] == read_record()["sha256"]

