"""The model registry, the design's architecture, windowed inference and checkpoints."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from fakescope.models.temporal_model import FaceContrastPool, FaceRegionPool
from fakescope.models import (
    BackboneWeightsError,
    CheckpointError,
    CheckpointMeta,
    create_model,
    list_models,
    load_checkpoint,
    open_checkpoint,
    read_checkpoint_header,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("tiny_lstm").eval()


def test_registry_lists_design_variants_and_rejects_unknown():
    assert {"xception_lstm", "xception_gru", "xception_bilstm", "tiny_lstm"} <= set(list_models())
    with pytest.raises(ValueError, match="unknown model 'nope'.*xception_lstm"):
        create_model("nope")


@pytest.mark.slow  # builds the full Xception
def test_xception_lstm_follows_the_design():
    model = create_model("xception_lstm")
    convs = [m for m in model.convs.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(2048, 128), (128, 256)]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.convs.modules()) == 2
    assert isinstance(model.rnn, nn.LSTM) and model.rnn.hidden_size == 256 and not model.rnn.bidirectional
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(256, 512), (512, 256), (256, 2)]
    assert [m.p for m in model.head if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 3, 224, 224))
    assert logits.shape == (1, 3, 2)


def test_rnn_type_direction_and_size_are_configuration(tiny):
    gru = create_model("tiny_lstm", rnn="gru", bidirectional=True, hidden_size=12)
    assert isinstance(gru.rnn, nn.GRU) and gru.rnn.bidirectional
    assert gru.head[0].in_features == 24
    with pytest.raises(ValueError, match="rnn must be"):
        create_model("tiny_lstm", rnn="transformer")


@pytest.mark.slow  # forward passes of every registered model
def test_forward_equals_staged_forward(tiny):
    clips = torch.randn(2, 5, 3, 64, 64)
    with torch.no_grad():
        whole = tiny(clips)
        features = tiny.forward_features(clips.flatten(0, 1)).view(2, 5, -1)
        staged = tiny.forward_temporal(features)
    assert torch.allclose(whole, staged, atol=1e-5)


@pytest.mark.slow  # forward passes of a full model
def test_predict_track_runs_independent_windows(tiny):
    features = torch.randn(20, tiny.feature_dim)
    p_fake = tiny.predict_track(features, window=8)
    assert p_fake.shape == (20,)
    assert ((p_fake >= 0) & (p_fake <= 1)).all()
    with torch.no_grad():
        second_window = tiny.forward_temporal(features[8:16].unsqueeze(0)).softmax(-1)[0, :, 1]
    assert torch.allclose(p_fake[8:16], second_window, atol=1e-6)
    # Changing frames of the first window never changes the second window's predictions.
    changed = features.clone()
    changed[:8] = torch.randn(8, tiny.feature_dim)
    assert torch.allclose(tiny.predict_track(changed, window=8)[8:], p_fake[8:], atol=1e-6)
    assert not torch.allclose(tiny.predict_track(changed, window=8)[:8], p_fake[:8])


def test_predict_windows_equals_predict_track_per_window(tiny):
    torch.manual_seed(3)
    windows = [torch.randn(length, tiny.feature_dim) for length in (8, 3, 8, 1, 3, 8)]
    batched = tiny.predict_windows(windows)
    assert [p.shape for p in batched] == [(w.shape[0],) for w in windows]
    for window, p_fake in zip(windows, batched):
        assert torch.allclose(p_fake, tiny.predict_track(window, window=window.shape[0]), atol=1e-6)
    # Each window from a fresh state: its scores do not depend on the windows batched with it.
    assert torch.allclose(tiny.predict_windows(windows[:1])[0], batched[0], atol=1e-6)
    with pytest.raises(ValueError, match="T >= 1"):
        tiny.predict_windows([torch.randn(0, tiny.feature_dim)])


@pytest.mark.slow  # checkpoints of a full model
def test_checkpoint_round_trip_keeps_outputs_and_config(tiny, tmp_path):
    path = save_checkpoint(tmp_path / "tiny.safetensors", tiny,
                           CheckpointMeta(trained=True, threshold=0.42, info={"epochs": 3}))
    config, meta = read_checkpoint_header(path)
    assert config == tiny.config
    assert meta.trained and meta.threshold == 0.42 and meta.info == {"epochs": 3}
    loaded, meta = load_checkpoint(path)
    assert len(meta.sha256) == 64
    clips = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(tiny(clips), loaded(clips), atol=1e-6)


@pytest.mark.slow  # checkpoints of a full model
def test_half_precision_checkpoint_loads_as_fp32(tiny, tmp_path):
    path = save_checkpoint(tmp_path / "half.safetensors", tiny, half=True)
    with safe_open(str(path), framework="pt") as handle:
        assert handle.get_tensor("head.0.weight").dtype == torch.float16
    loaded, _ = load_checkpoint(path)
    assert loaded.head[0].weight.dtype == torch.float32
    clips = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(tiny(clips).softmax(-1), loaded(clips).softmax(-1), atol=2e-2)


def test_checkpoint_that_does_not_match_its_config_is_refused(tiny, tmp_path):
    path = save_checkpoint(tmp_path / "tiny.safetensors", tiny)
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        metadata = handle.metadata()
    config = json.loads(metadata["fakescope.model_config"])
    config["hidden_size"] = 32
    metadata["fakescope.model_config"] = json.dumps(config)
    tampered = tmp_path / "tampered.safetensors"
    save_file(tensors, str(tampered), metadata=metadata)
    with pytest.raises(CheckpointError, match="does not match its declared architecture 'tiny_lstm'.*shape"):
        load_checkpoint(tampered)


def test_an_opened_checkpoint_is_built_when_first_used_and_only_from_the_file_opened(tiny, tmp_path):
    path = save_checkpoint(tmp_path / "tiny.safetensors", tiny, CheckpointMeta(trained=True, threshold=0.42))
    lazy, meta = open_checkpoint(path)
    loaded, loaded_meta = load_checkpoint(path)
    assert meta == loaded_meta and lazy.config == loaded.config and not lazy.built
    model = lazy.get()
    assert lazy.built and lazy.get() is model and not model.training
    for key, value in loaded.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    # A file replaced between opening and building: its model is not the one whose sha256 was recorded.
    lazy, _ = open_checkpoint(path)
    save_checkpoint(path, tiny, CheckpointMeta(trained=True, threshold=0.5))
    with pytest.raises(CheckpointError, match="has changed since it was opened"):
        lazy.get()
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(CheckpointError, match="not a fakescope checkpoint"):
        open_checkpoint(bare)


def test_non_fakescope_files_get_clear_errors(tmp_path):
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(CheckpointError, match="not a fakescope checkpoint"):
        load_checkpoint(bare)
    text = tmp_path / "text.safetensors"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        load_checkpoint(text)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_backbone_weights_from_a_local_file_and_the_environment(tmp_path, monkeypatch):
    source = create_model("tiny_lstm")
    weights = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in source.backbone.state_dict().items()}, str(weights))
    loaded = create_model("tiny_lstm", backbone_weights=weights)
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[key], value)
    monkeypatch.setenv("FAKESCOPE_BACKBONE_WEIGHTS", str(weights))
    from_env = create_model("tiny_lstm")
    assert torch.equal(from_env.backbone.conv1[0].weight, source.backbone.conv1[0].weight)
    monkeypatch.delenv("FAKESCOPE_BACKBONE_WEIGHTS")
    wrong = tmp_path / "wrong.safetensors"
    save_file({"conv1.weight": torch.zeros(3)}, str(wrong))
    with pytest.raises(BackboneWeightsError, match="does not match the backbone"):
        create_model("tiny_lstm", backbone_weights=wrong)
    with pytest.raises(BackboneWeightsError, match="not found"):
        create_model("tiny_lstm", backbone_weights=tmp_path / "absent.safetensors")


def test_shared_imagenet_xception_loads_with_keras_batchnorm_eps(backbone_weights):
    model = create_model("xception_lstm", backbone_weights=backbone_weights)
    with safe_open(str(backbone_weights), framework="pt") as handle:
        for key in ("conv1.weight", "block12.rep.2.running_var", "bn4.weight"):
            assert torch.equal(model.backbone.state_dict()[key], handle.get_tensor(key)), key
    assert all(m.eps == 1e-3 for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d))


def test_streaming_one_frame_at_a_time_matches_the_whole_window(tiny):
    features = torch.randn(6, tiny.feature_dim)
    whole = tiny.predict_track(features, window=6)
    state, streamed = None, []
    for frame in features:
        p_fake, state = tiny.stream_step(frame.unsqueeze(0), state)
        streamed.append(float(p_fake[0]))
    assert streamed == pytest.approx(whole.tolist(), abs=1e-5)
    # Two tracks at once keep separate states.
    pair, _ = tiny.stream_step(torch.stack([features[0], features[0]]), None)
    assert pair[0] == pytest.approx(float(whole[0]), abs=1e-5) and pair[1] == pytest.approx(pair[0])
    with pytest.raises(ValueError, match="bidirectional"):
        create_model("tiny_lstm", bidirectional=True).eval().stream_step(features[:1])


@pytest.mark.slow  # two Xception backbones
def test_backbone_cut_after_a_stage_equals_the_whole_backbone_up_to_it(tiny, tmp_path):
    import timm

    from fakescope.models import create_backbone

    torch.manual_seed(3)
    whole = timm.create_model("test_resnet", num_classes=0, global_pool="").eval()
    path = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in whole.state_dict().items()}, str(path))
    cut = create_backbone("test_resnet", weights=path, stage="layer2").eval()
    assert [name for name, _ in cut.named_children()][-1] == "layer2"
    frames = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = frames
        for name in ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2"):
            expected = getattr(whole, name)(expected)
        assert torch.equal(cut.forward_features(frames), expected)
    assert cut.num_features == expected.shape[1]
    with pytest.raises(ValueError, match="no stage 'block99'"):
        create_backbone("test_resnet", stage="block99")


@pytest.mark.slow  # builds the full Xception
@pytest.mark.parametrize("name", ["test_resnet", "legacy_xception"])
def test_a_cut_backbone_knows_its_channels_without_a_forward_pass(name):
    import timm

    from fakescope.models.backbone import StageBackbone

    whole = timm.create_model(name, num_classes=0, global_pool="").eval()
    stages = [stage for stage, module in whole.named_children() if any(True for _ in module.parameters())]
    for stage in stages:
        cut = StageBackbone(whole, stage)
        assert cut.num_features == cut._probe_channels(), stage


@pytest.mark.slow  # a cut Xception through a checkpoint
def test_model_on_a_cut_backbone_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(4)
    model = create_model("tiny_lstm", backbone_stage="layer3").eval()
    assert not any(key.startswith("backbone.layer4") for key in model.state_dict())
    assert model.convs[0][0].in_channels == model.backbone.num_features
    path = save_checkpoint(tmp_path / "cut.safetensors", model, CheckpointMeta(trained=True))
    loaded, _ = load_checkpoint(path)
    clips = torch.randn(1, 3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(clips), loaded(clips))
    assert loaded.config.backbone_stage == "layer3"


@pytest.mark.slow  # builds the full Xception
def test_xception_mid_lstm_is_the_design_on_the_middle_flow():
    model = create_model("xception_mid_lstm")
    assert model.backbone.num_features == 728 and model.backbone.stage == "block8"
    convs = [m for m in model.convs.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(728, 128), (128, 256)]
    assert isinstance(model.rnn, nn.LSTM) and model.rnn.hidden_size == 256
    assert model.config.pool == "face"
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 2, 3, 224, 224)).shape == (1, 2, 2)


def test_face_pool_covers_the_face_box_centre_and_leaves_the_corners_out():
    mask = FaceRegionPool.mask(14, 14)
    face_columns = slice(2, 12)  # the face box is the crop's central 1/1.3: cells 2-11 of 14
    assert mask[:, face_columns].sum() == mask.sum()  # nothing beside the face
    assert mask[0].sum() == 0 and mask[13].sum() == 0  # the ellipse reaches a little above and below the box
    assert mask[7, 7] == 1 and mask[0, 0] == 0 and mask[13, 13] == 0 and mask[0, 13] == 0
    assert 0.4 < float(mask.mean()) < 0.6
    assert FaceRegionPool.mask(1, 1).sum() == 1  # a 1x1 map still pools something


def test_face_contrast_pool_returns_the_face_and_its_difference_from_around_it():
    face = FaceRegionPool.mask(14, 14).bool()
    maps = torch.randn(3, 5, 14, 14)
    pooled = FaceContrastPool()(maps)
    assert pooled.shape == (3, 10)
    face_mean = maps[..., face].mean(-1)
    around_mean = maps[..., ~face].mean(-1)
    torch.testing.assert_close(pooled[:, :5], face_mean)
    torch.testing.assert_close(pooled[:, 5:], face_mean - around_mean)
    torch.testing.assert_close(pooled[:, :5], FaceRegionPool()(maps))  # the first half is the face pool itself
    # What shifts the whole crop alike (a person's lighting, skin, camera) leaves the contrast unchanged.
    torch.testing.assert_close(FaceContrastPool()(maps + 2.5)[:, 5:], pooled[:, 5:])
    assert FaceContrastPool()(torch.randn(2, 5, 1, 1))[:, 5:].abs().max() == 0  # nothing around a 1x1 map


def test_a_face_contrast_model_feeds_twice_the_channels_to_its_rnn_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = create_model("tiny_lstm", pool="face_contrast").eval()
    assert model.feature_dim == 2 * model.config.conv_channels[-1] == model.rnn.input_size
    clips = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        logits = model(clips)
        features = model.forward_features(clips.flatten(0, 1))
    assert logits.shape == (2, 3, 2) and features.shape == (6, model.feature_dim)
    path = save_checkpoint(tmp_path / "contrast.safetensors", model, CheckpointMeta(trained=False, threshold=0.5))
    loaded, _ = load_checkpoint(path)
    assert loaded.config.pool == "face_contrast"
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(clips), logits)


@pytest.mark.slow  # several forward passes of a cut Xception
def test_face_pooled_model_ignores_what_lies_outside_the_face(tmp_path):
    torch.manual_seed(5)
    # A cut backbone keeps a fine map (32x32 at 128 px), so the crop's corners lie beyond the receptive field of
    # every cell of the face ellipse.
    model = create_model("tiny_lstm", backbone_stage="layer1", input_size=128, pool="face").eval()
    clips = torch.randn(1, 2, 3, 128, 128)
    changed = clips.clone()
    for rows, cols in ((slice(0, 12), slice(0, 12)), (slice(-12, None), slice(-12, None)), (slice(0, 12), slice(-12, None))):
        changed[..., rows, cols] = 3.0
    global_model = create_model("tiny_lstm", backbone_stage="layer1", input_size=128, pool="global").eval()
    global_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(model(clips), model(changed), atol=1e-6)
        assert torch.allclose(model.forward_features(clips[0]), model.forward_features(changed[0]), atol=1e-6)
        assert not torch.allclose(
            global_model.forward_features(clips[0]), global_model.forward_features(changed[0]), atol=1e-3
        )
    path = save_checkpoint(tmp_path / "face.safetensors", model, CheckpointMeta(trained=True))
    loaded, _ = load_checkpoint(path)
    assert loaded.config.pool == "face"
    with torch.no_grad():
        assert torch.allclose(loaded(clips), model(clips))
