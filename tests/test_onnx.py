"""ONNX export (fp32 and int8) and the ONNX runtime against PyTorch, on the tiny model and generated face clips;
what ``--precision auto`` chooses."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from clips import make_clip
from fakescope.analysis import FaceEncoder, Scanner
from fakescope.analysis.encoder import OnnxFaceEncoder, auto_precision, parse_cpu_flags, resolve_precision
from fakescope.analysis.export import collect_face_crops, compare_with_torch, export_scanner
from fakescope.analysis.live import LiveAnalyzer, PushedFrames
from fakescope.cli.main import main
from fakescope.models import CheckpointMeta, create_model, save_checkpoint
from fakescope.models.onnx_model import OnnxModel, OnnxModelError, head_path_for, read_onnx_metadata
from fakescope.options import AnalysisOptions, OutputOptions
from fakescope.outputs import scan_to_folder
from fakescope.server.scan_form import with_server_options
from fakescope.video import FrameSelection, MediaReader

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def scanner(tiny_weights: Path) -> Scanner:
    return Scanner.load(tiny_weights, device="cpu", allow_untrained=True, precision="fp32")


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("onnx-clips") / "face.mp4", n_frames=24, size=(480, 360), fps=25.0)


@pytest.fixture(scope="module")
def crops(scanner: Scanner, face_clip: Path):
    """The face crops of every frame of the clip, cut as a scan cuts them."""
    found = collect_face_crops(scanner, [face_clip], frames_per_input=24)
    assert len(found.sequences) == 1 and len(found.sequences[0]) == 24
    return found


@pytest.fixture(scope="module")
def exported(scanner: Scanner, tmp_path_factory) -> Path:
    return export_scanner(scanner, tmp_path_factory.mktemp("export") / "tiny.onnx").encoder


@pytest.fixture(scope="module")
def exported_int8(scanner: Scanner, crops, tmp_path_factory) -> Path:
    return export_scanner(scanner, tmp_path_factory.mktemp("export8") / "tiny-int8.onnx", int8=True,
                          calibration=crops, calibration_source="the test clip").encoder


def test_the_export_describes_itself(scanner: Scanner, exported: Path) -> None:
    info = read_onnx_metadata(exported)
    assert info.config == scanner.model.config
    assert info.threshold == scanner.meta.threshold and info.trained is False
    assert info.source_sha256 == scanner.meta.sha256 and info.source_name == Path(scanner.meta.path).name
    assert info.precision == "fp32" and info.quantisation is None
    assert info.input["size"] == 64 and info.input["layout"] == "NHWC" and info.input["mean"] == [0.485, 0.456, 0.406]
    assert exported.with_name(info.head_file) == head_path_for(exported) and head_path_for(exported).is_file()
    graph = onnx.load(str(exported)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis


def test_fp32_encoder_matches_torch_at_any_batch_size(scanner: Scanner, exported: Path, crops) -> None:
    reference = FaceEncoder(scanner.model, CPU, scanner.faces.margin, "fp32")
    onnx_model = OnnxModel(exported)
    all_crops = crops.crops
    for batch_size in (1, 5, 24):
        batch = all_crops[:batch_size]
        expected = reference.encode(batch).numpy()
        got = onnx_model.features(np.stack(batch))
        assert got.shape == expected.shape == (batch_size, scanner.model.feature_dim)
        np.testing.assert_allclose(got, expected, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


@pytest.mark.parametrize("pool", ["face", "face_contrast"])
def test_face_pooled_encoders_export_with_their_regions(pool: str, crops, tmp_path: Path) -> None:
    torch.manual_seed(2)
    weights = save_checkpoint(tmp_path / f"{pool}.safetensors", create_model("tiny_lstm", pool=pool),
                              CheckpointMeta(trained=False, threshold=0.5))
    pooled = Scanner.load(weights, device="cpu", allow_untrained=True, precision="fp32")
    encoder = export_scanner(pooled, tmp_path / f"{pool}.onnx").encoder
    batch = crops.crops[:6]
    expected = FaceEncoder(pooled.model, CPU, pooled.faces.margin, "fp32").encode(batch).numpy()
    got = OnnxModel(encoder).features(np.stack(batch))
    assert got.shape == expected.shape == (6, pooled.model.feature_dim)
    np.testing.assert_allclose(got, expected, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def test_fp32_head_matches_torch_in_windows_and_streaming(scanner: Scanner, exported: Path) -> None:
    torch.manual_seed(1)
    reference = FaceEncoder(scanner.model, CPU, scanner.faces.margin, "fp32")
    onnx_encoder = OnnxFaceEncoder(scanner.model, CPU, scanner.faces.margin, "auto", OnnxModel(exported))
    window = scanner.model.config.window
    for length in (3, window, 2 * window + 5):
        features = torch.randn(length, scanner.model.feature_dim)
        expected = reference.predict_track(features, window)
        got = onnx_encoder.predict_track(features, window)
        assert got.shape == (length,)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    # Live: two tracks stepped together, each carrying its state, as the PyTorch model streams them.
    steps = torch.randn(12, 2, scanner.model.feature_dim)
    torch_state = onnx_state = None
    for step in steps:
        expected, torch_state = reference.stream_step(step, torch_state)
        got, onnx_state = onnx_encoder.stream_step(step, onnx_state)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_int8_export_is_quantised_and_scores_close_to_torch(scanner: Scanner, exported_int8: Path, crops) -> None:
    info = read_onnx_metadata(exported_int8)
    assert info.precision == "int8"
    assert info.quantisation["calibration_crops"] == 24 and info.quantisation["per_channel"] is True
    assert info.quantisation["format"] == "QDQ" and info.quantisation["activations"] == "uint8"
    graph = onnx.load(str(exported_int8)).graph
    assert sum(node.op_type == "QuantizeLinear" for node in graph.node) >= 5
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 5  # the convolutions' weights
    reference = FaceEncoder(scanner.model, CPU, scanner.faces.margin, "fp32").encode(crops.crops).numpy()
    quantised = OnnxModel(exported_int8).features(np.stack(crops.crops))

    def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).mean())

    assert mean_cosine(reference, quantised) > 0.98
    # The untrained tiny model gives every face nearly the same features: what int8 must keep is how each crop's
    # features differ from the others'. Against another crop's (a wrong pairing) that agreement is near zero.
    centre = reference.mean(0)
    assert mean_cosine(reference - centre, quantised - centre) > 0.6
    assert mean_cosine(reference - centre, np.roll(quantised, 5, axis=0) - centre) < 0.3
    agreement = compare_with_torch(scanner, exported_int8, crops.sequences)
    assert agreement.crops == 24 and agreement.max_p_fake_diff < 0.05


def test_scan_with_the_onnx_runtime_writes_the_same_outputs(scanner: Scanner, exported: Path, face_clip: Path,
                                                          tmp_path: Path) -> None:
    onnx_scanner = scanner.with_analysis(AnalysisOptions(runtime="onnx", onnx_model=str(exported)))
    torch_result = scan_to_folder(scanner, face_clip, tmp_path / "torch")
    onnx_result = scan_to_folder(onnx_scanner, face_clip, tmp_path / "onnx")
    assert sorted(p.name for p in (tmp_path / "torch").iterdir()) == sorted(p.name for p in (tmp_path / "onnx").iterdir())
    assert onnx_result.verdict == torch_result.verdict and onnx_result.p_fake == pytest.approx(torch_result.p_fake,
                                                                                            abs=1e-5)
    rows = {name: list(csv.DictReader(open(tmp_path / name / "predictions.csv"))) for name in ("torch", "onnx")}
    assert len(rows["onnx"]) == len(rows["torch"]) == 24
    for ours, theirs in zip(rows["onnx"], rows["torch"]):
        assert (ours["frame_index"], ours["track_id"]) == (theirs["frame_index"], theirs["track_id"])
        assert float(ours["p_fake"]) == pytest.approx(float(theirs["p_fake"]), abs=1e-5)
    model = json.loads((tmp_path / "onnx" / "summary.json").read_text())["model"]
    assert model["runtime"] == "onnx" and model["precision"] == "fp32"
    assert model["onnx"]["path"] == str(exported) and len(model["onnx"]["sha256"]) == 64
    assert json.loads((tmp_path / "torch" / "summary.json").read_text())["model"]["runtime"] == "torch"
    assert "ONNX Runtime (CPUExecutionProvider), tiny.onnx" in (tmp_path / "onnx" / "report.html").read_text()


@pytest.mark.slow  # a scan with the heatmap pass
def test_heatmaps_with_the_onnx_runtime_come_from_the_same_weights_in_torch(scanner: Scanner, exported: Path,
                                                                           face_clip: Path, tmp_path: Path) -> None:
    code = main(["scan", str(face_clip), "--weights", scanner.meta.path, "--allow-untrained", "--runtime", "onnx",
                 "--onnx-model", str(exported), "--every", "6", "--heatmap", "--no-video", "--quiet",
                 "--out", str(tmp_path)])
    assert code == 0
    assert len(list((tmp_path / "face.mp4" / "heatmaps").glob("*_crop.png"))) >= 1
    assert (tmp_path / "face.mp4" / "heatmap.mp4").is_file()


@pytest.fixture()
def onnx_scanner(scanner: Scanner, exported: Path) -> Scanner:
    """A scanner on the ONNX runtime, loaded from the checkpoint (its PyTorch model not built yet)."""
    return Scanner.load(scanner.meta.path, device="cpu", allow_untrained=True, runtime="onnx",
                        onnx_model=str(exported), selection=FrameSelection("count", 4))


def test_the_onnx_runtime_scans_without_building_the_pytorch_model(scanner: Scanner, onnx_scanner: Scanner,
                                                                    face_clip: Path, tmp_path: Path) -> None:
    assert not onnx_scanner.model_built and onnx_scanner.config == scanner.config
    result = scan_to_folder(onnx_scanner, face_clip, tmp_path, OutputOptions(annotate=False))
    assert result.frames_with_faces == 4 and not onnx_scanner.model_built
    assert result.model["sha256"] == scanner.meta.sha256 and result.model["config"] == scanner.config.to_dict()
    # Built once when first asked for, on the device, and shared with the copies a server makes per request.
    derived = onnx_scanner.with_analysis(onnx_scanner.analysis)
    assert derived.model is onnx_scanner.model and onnx_scanner.model_built and not derived.model.training
    assert derived.encoder.model is derived.model


@pytest.mark.slow  # two scans with the heatmap pass
def test_heatmaps_on_the_onnx_runtime_build_the_checkpoints_model(scanner: Scanner, onnx_scanner: Scanner,
                                                                   face_clip: Path, tmp_path: Path) -> None:
    options = OutputOptions(annotate=False, heatmap=True)
    result = scan_to_folder(onnx_scanner, face_clip, tmp_path / "onnx", options)
    assert result.verdict != "error" and onnx_scanner.model_built
    # The lazily built model is the checkpoint's, as the torch runtime loads it: the same heatmaps.
    torch_scanner = scanner.with_analysis(AnalysisOptions(precision="fp32", selection=onnx_scanner.selection))
    scan_to_folder(torch_scanner, face_clip, tmp_path / "torch", options)
    pngs = {name: sorted((tmp_path / name / "heatmaps").glob("*.png")) for name in ("onnx", "torch")}
    assert len(pngs["onnx"]) >= 2 and [p.name for p in pngs["onnx"]] == [p.name for p in pngs["torch"]]
    assert all(ours.read_bytes() == theirs.read_bytes() for ours, theirs in zip(pngs["onnx"], pngs["torch"]))


@pytest.mark.slow  # a fresh Python process (imports torch)
def test_a_scan_on_the_onnx_runtime_never_imports_timm(scanner: Scanner, exported: Path, face_clip: Path,
                                                       tmp_path: Path) -> None:
    import fakescope

    program = ("import sys; from fakescope.cli.main import main; "
               f"code = main(['scan', {str(face_clip)!r}, '--weights', {scanner.meta.path!r}, '--allow-untrained', "
               f"'--runtime', 'onnx', '--onnx-model', {str(exported)!r}, '--frames', '4', '--no-video', '--quiet', "
               f"'--out', {str(tmp_path / 'out')!r}]); "
               "print(code, sorted(name for name in ('timm', 'torchvision') if name in sys.modules))")
    package_root = str(Path(fakescope.__file__).parents[1])
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": package_root})
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "0 []"


@pytest.mark.slow  # two live runs over the clip
def test_live_with_the_onnx_runtime_matches_torch(scanner: Scanner, exported: Path, face_clip: Path) -> None:
    onnx_scanner = scanner.with_analysis(AnalysisOptions(runtime="onnx", onnx_model=str(exported)))
    scores = {}
    for name, chosen in (("torch", scanner), ("onnx", onnx_scanner)):
        live = LiveAnalyzer(chosen, PushedFrames())
        with MediaReader(face_clip) as reader:
            analyses = [live.analyse_pushed(frame.image, frame.index, frame.time_s) for frame in reader]
        scores[name] = [face.p_fake for analysis in analyses for face in analysis.faces]
    assert len(scores["onnx"]) == 24
    np.testing.assert_allclose(scores["onnx"], scores["torch"], atol=1e-5)


@pytest.mark.parametrize("damage", ["missing", "garbage", "not_fakescope", "no_head", "wrong_head"])
def test_a_bad_onnx_file_is_refused_with_a_clear_error(scanner: Scanner, exported: Path, face_clip: Path,
                                                       tmp_path: Path, capsys, damage: str) -> None:
    target = tmp_path / "model.onnx"
    expected = {"missing": "not found", "garbage": "could not be loaded", "not_fakescope": "not a fakescope export",
                "no_head": "needs its head graph", "wrong_head": "is not the head graph"}[damage]
    if damage == "garbage":
        target.write_bytes(b"this is not a protobuf" * 40)
    elif damage == "not_fakescope":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation
            torch.onnx.export(torch.nn.Linear(3, 2).eval(), (torch.zeros(1, 3),), str(target), dynamo=False)
    elif damage in ("no_head", "wrong_head"):
        target.write_bytes(exported.read_bytes())  # renamed: its head is found by the name it records
        if damage == "wrong_head":
            target.with_name(head_path_for(exported).name).write_bytes(head_path_for(exported).read_bytes() + b"\0")
    code = main(["scan", str(face_clip), "--weights", scanner.meta.path, "--allow-untrained", "--runtime", "onnx",
                 "--onnx-model", str(target), "--out", str(tmp_path / "out")])
    assert code == 2
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error


@pytest.mark.parametrize(("arguments", "expected"), [
    (["--runtime", "onnx"], "--runtime onnx needs --onnx-model"),
    (["--onnx-model", "EXPORTED"], "--onnx-model is for --runtime onnx"),
    (["--runtime", "onnx", "--onnx-model", "EXPORTED", "--precision", "bf16"], "runs in fp32"),
])
def test_runtime_options_that_do_not_fit_together_are_usage_errors(scanner: Scanner, exported: Path,
                                                                   face_clip: Path, tmp_path: Path, capsys,
                                                                   arguments: list[str], expected: str) -> None:
    arguments = [str(exported) if argument == "EXPORTED" else argument for argument in arguments]
    code = main(["scan", str(face_clip), "--weights", scanner.meta.path, "--allow-untrained", *arguments,
                 "--out", str(tmp_path)])
    assert code == 2 and expected in capsys.readouterr().err


def test_an_export_of_other_weights_or_another_model_is_refused(exported: Path, tmp_path: Path) -> None:
    torch.manual_seed(7)
    other_weights = save_checkpoint(tmp_path / "other.safetensors", create_model("tiny_lstm"), CheckpointMeta())
    with pytest.raises(OnnxModelError, match="exported from other weights"):
        Scanner.load(other_weights, device="cpu", allow_untrained=True, runtime="onnx", onnx_model=str(exported))
    gru = save_checkpoint(tmp_path / "gru.safetensors", create_model("tiny_lstm", rnn="gru"), CheckpointMeta())
    with pytest.raises(OnnxModelError, match="another model.*rnn"):
        Scanner.load(gru, device="cpu", allow_untrained=True, runtime="onnx", onnx_model=str(exported))


@pytest.mark.slow  # an int8 export with its calibration
def test_export_command_writes_both_files_and_reports_agreement(scanner: Scanner, face_clip: Path, tmp_path: Path,
                                                                 capsys) -> None:
    out = tmp_path / "cli" / "model.onnx"
    code = main(["export", "--format", "onnx", "--weights", scanner.meta.path, "--allow-untrained", "--int8",
                 "--calibration", str(face_clip), "--calibration-frames", "6", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "6 face crops from 1 inputs" in printed and "max |delta p_fake|" in printed
    assert out.is_file() and head_path_for(out).is_file()
    assert read_onnx_metadata(out).quantisation["calibration_source"].startswith("6 face crops")
    assert main(["export", "--weights", scanner.meta.path, "--allow-untrained", "--out", str(tmp_path / "x.pt")]) == 2
    assert ".onnx" in capsys.readouterr().err


def test_auto_precision_follows_the_cpu_and_gpu() -> None:
    assert auto_precision("cpu", {"avx512f", "avx512_vnni", "avx512_bf16"}) == "bf16"
    assert auto_precision("cpu", {"avx512f", "amx_tile", "amx_bf16"}) == "bf16"  # Sapphire Rapids and later
    assert auto_precision("cpu", {"avx2", "avx512f", "avx512_vnni"}) == "fp32"  # bf16 would be emulated
    assert auto_precision("cpu", set()) == "fp32"  # no flags known (another OS, an ARM CPU)
    assert auto_precision("cuda", cuda_bf16=True) == "bf16"
    assert auto_precision("cuda", cuda_bf16=False) == "fp16"
    assert auto_precision("mps", {"avx512_bf16"}) == "fp32"


def test_cpu_flags_are_read_from_cpuinfo() -> None:
    text = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n\n"
            "processor\t: 1\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n")
    assert parse_cpu_flags(text) == {"fpu", "sse", "avx512f", "avx512_bf16", "avx512_vnni"}
    assert parse_cpu_flags("Features\t: fp asimd bf16\n") == frozenset()  # an ARM cpuinfo has no x86 flags
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)


def test_a_server_on_the_onnx_runtime_scans_with_it_and_refuses_what_it_cannot_run(
        scanner: Scanner, exported: Path, face_clip: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from fakescope.server import ServerSettings, create_app
    from server_helpers import wait_for_job

    onnx_scanner = Scanner.load(scanner.meta.path, device="cpu", allow_untrained=True, runtime="onnx",
                                onnx_model=str(exported), batch_size=4)
    with TestClient(create_app(onnx_scanner, ServerSettings(data_dir=tmp_path))) as client:
        assert client.get("/api/v1/model").json()["runtime"] == "onnx"

        def submit(**options):
            with open(face_clip, "rb") as handle:
                return client.post("/api/v1/jobs", files={"file": ("face.mp4", handle, "video/mp4")},
                                   data={key: str(value) for key, value in options.items()})

        refused = submit(precision="bf16")
        assert refused.status_code == 422 and "runs in fp32" in refused.json()["detail"]
        job = wait_for_job(client, submit(every=4).json()["id"])
        assert job["state"] == "done" and job["summary"]["model"]["runtime"] == "onnx"
        assert job["summary"]["frames_analysed"] == 6
        # Neither the scans nor the live copy built the PyTorch model: without heatmaps nothing needs it.
        assert not onnx_scanner.model_built and not client.app.state.live.scanner.model_built


def test_the_server_keeps_its_runtime_for_every_request() -> None:
    server = AnalysisOptions(runtime="onnx", onnx_model="m.onnx", batch_size=4, window=16)
    request = AnalysisOptions(precision="fp32", threshold=0.3, selection=FrameSelection("count", 5))
    merged = with_server_options(request, server)
    assert (merged.runtime, merged.onnx_model, merged.batch_size, merged.window) == ("onnx", "m.onnx", 4, 16)
    assert (merged.precision, merged.threshold, merged.selection) == ("fp32", 0.3, FrameSelection("count", 5))


@pytest.mark.slow
@pytest.mark.shared
def test_shipped_model_on_a_real_video_fp32_exact_and_int8_close(ffpp_dir: Path, fake_video: Path,
                                                                 tmp_path: Path) -> None:
    selection = FrameSelection("count", 8)
    scanner = Scanner.load(device="cpu", precision="fp32", selection=selection)
    calibration = collect_face_crops(scanner, [ffpp_dir / "original_sequences" / "youtube"], frames_per_input=4)
    assert len(calibration.crops) == 24  # 6 real videos, a face in every frame
    results = {"torch": scanner.scan(fake_video)}
    for precision in ("fp32", "int8"):
        path = export_scanner(scanner, tmp_path / f"{precision}.onnx", int8=precision == "int8",
                              calibration=calibration).encoder
        results[precision] = scanner.with_analysis(
            AnalysisOptions(selection=selection, runtime="onnx", onnx_model=str(path))).scan(fake_video)

    def faces(result):
        return {(frame.frame_index, face.track_id): face.p_fake for frame in result.frames for face in frame.faces}

    reference = faces(results["torch"])
    assert len(reference) >= 8
    for precision, tolerance in (("fp32", 1e-4), ("int8", 0.1)):
        scores = faces(results[precision])
        assert scores.keys() == reference.keys()
        differences = [abs(scores[key] - reference[key]) for key in reference]
        assert float(np.mean(differences)) < tolerance, (precision, differences)
    assert results["fp32"].verdict == results["torch"].verdict
    assert abs(results["int8"].p_fake - results["torch"].p_fake) < 0.15
