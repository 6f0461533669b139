"""``fakescope scan --cluster``: Ray workers on a local cluster started by the tests write the same files as a local
run, survive a worker killed mid-scan, resume; and the parts that need no cluster (sizing, the worker's checks,
clear errors)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakescope.cli.main import main
from fakescope.cluster import ClusterError, WorkerSetup
from fakescope.cluster import ray_pool
from fakescope.options import AnalysisOptions, FaceOptions, FrameSelection, OutputOptions
from fakescope.outputs.runs import ScanJob
from run_helpers import RUN_ORDER, hidden_entries, make_run_inputs, report_inputs, run_files

SCAN_ARGS = ("--allow-untrained", "--quiet", "--frames", "4")


@pytest.fixture(scope="module")
def ray_module():
    """Ray, which the test extra installs: skipped where absent, except under CI=true where absence is a failure."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but ray is not installed (pip install -e '.[test]')")
        pytest.skip("ray is not installed (pip install 'fakescope[cluster]')")
    return ray


# --- without a cluster --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node_cpus", "gpus", "workers", "use_gpu", "expected"),
    [
        ([2], 0, None, False, (2, 1, 0.0)),  # one worker per CPU by default
        ([2], 0, 1, False, (1, 2, 0.0)),  # one worker takes both CPUs as its threads
        ([8, 8], 0, 4, False, (4, 4, 0.0)),
        ([8, 8], 0, 3, False, (3, 4, 0.0)),  # 5 each would not fit two nodes of 8: 4 each does
        ([16, 4], 0, 2, False, (2, 8, 0.0)),
        ([8], 2, None, True, (2, 4, 1.0)),  # one worker per GPU, the CPUs shared out
        ([8], 1, 2, True, (2, 4, 0.5)),
    ],
)
def test_workers_share_the_cluster_evenly(node_cpus, gpus, workers, use_gpu, expected):
    assert ray_pool.plan_workers(node_cpus, gpus, workers, use_gpu) == expected


def test_more_workers_than_cpus_or_cuda_without_gpus_is_refused():
    with pytest.raises(ClusterError, match="--cluster-workers 3: the cluster has 2 CPUs"):
        ray_pool.plan_workers([2], 0, 3, False)
    with pytest.raises(ClusterError, match="no GPU"):
        ray_pool.plan_workers([2], 0, None, True)


def _setup(weights: Path, probe: Path) -> WorkerSetup:
    return WorkerSetup(str(weights), True, FaceOptions(), AnalysisOptions(selection=FrameSelection("count", 4)),
                       OutputOptions(annotate=False), probe=str(probe))


def test_a_worker_checks_that_it_sees_the_output_folder_and_each_input(tiny_weights, tmp_path):
    # The actor's body, run here: where the output folder is not shared, its check file is missing.
    blind = ray_pool.ScanActor(_setup(tiny_weights, tmp_path / "out" / ".cluster-check.0123abcd.partial"))
    info = blind.ready()
    assert info.error is not None and "cannot see the output folder" in info.error and info.pid == os.getpid()

    probe = tmp_path / "out" / ".cluster-check.0123abcd.partial"
    probe.parent.mkdir()
    probe.write_text("")
    worker = ray_pool.ScanActor(_setup(tiny_weights, probe))
    info = worker.ready()
    assert info.error is None and info.model["trained"] is False
    reply = worker.scan(ScanJob(0, tmp_path / "elsewhere.mp4", tmp_path / "out" / "elsewhere.mp4", "[1]"))
    assert reply.unseen == str(tmp_path / "elsewhere.mp4") and reply.summary is None


def test_without_ray_the_command_says_how_to_install_it(tiny_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = main(["scan", str(tmp_path), "--weights", str(tiny_weights), "--out", str(tmp_path / "out"),
                 "--cluster", "ray", *SCAN_ARGS])
    assert code == 2
    assert "pip install 'fakescope[cluster]'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--cluster", "spark"], "expected ray, auto or ray://HOST[:PORT]"),
     (["--cluster", "ray://head:99999"], "bad port"),
     (["--cluster-workers", "2"], "--cluster-workers needs --cluster")],
)
def test_cluster_flags_are_checked(tiny_weights, tmp_path, capsys, args, message):
    try:
        code = main(["scan", str(tmp_path), "--weights", str(tiny_weights), "--out", str(tmp_path / "out"),
                     *SCAN_ARGS, *args])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_joining_a_cluster_that_does_not_answer_fails_at_once(ray_module, monkeypatch):
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    monkeypatch.setattr(ray_module, "is_initialized", lambda: False)
    started = time.monotonic()
    with pytest.raises(ClusterError, match=f"nothing answers at 127.0.0.1:{port}"):
        ray_pool.connect("auto")
    with pytest.raises(ClusterError, match="Ray client server"):
        ray_pool.connect(f"ray://127.0.0.1:{port}")
    assert time.monotonic() - started < 30  # Ray itself would retry such an address for many minutes


# --- on a local cluster of 2 workers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_cluster(ray_module):
    """A local Ray instance with 2 CPUs, started as ``--cluster ray`` starts one; the runs of this module use it."""
    assert ray_pool.connect("ray", num_cpus=2)
    yield ray_module
    ray_module.shutdown()


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory) -> Path:
    return make_run_inputs(tmp_path_factory.mktemp("run") / "inputs", long_frames=60)


@pytest.fixture(scope="module")
def local_run(tiny_weights, run_inputs, tmp_path_factory) -> Path:
    """The output folder of a local run over ``run_inputs``: what every cluster run must reproduce."""
    out = tmp_path_factory.mktemp("local") / "out"
    assert main(["scan", str(run_inputs), "--weights", str(tiny_weights), "--out", str(out), *SCAN_ARGS]) == 0
    return out


def _cluster_scan(weights: Path, inputs: Path, out: Path, *extra: str) -> int:
    return main(["scan", str(inputs), "--weights", str(weights), "--out", str(out), *SCAN_ARGS,
                 "--cluster", "ray", "--cluster-workers", "2", *extra])


def _assert_same_files(out: Path, reference: Path) -> None:
    got, expected = run_files(out), run_files(reference)
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name] == expected[name], name


@pytest.mark.slow  # a local Ray instance and two workers
def test_a_cluster_run_writes_the_files_of_a_local_run(local_cluster, tiny_weights, run_inputs, local_run, tmp_path):
    out = tmp_path / "out"
    assert _cluster_scan(tiny_weights, run_inputs, out) == 0
    # Byte for byte (annotated videos, plots, CSVs, HTML), summaries and report.json but for their timings.
    _assert_same_files(out, local_run)
    assert "timing" in json.loads((out / "report.json").read_text())["results"][0]
    assert report_inputs(out) == [str(run_inputs / name) for name in RUN_ORDER]
    assert hidden_entries(out) == []


@pytest.mark.slow  # a local Ray instance, two workers and a replacement
def test_a_worker_killed_mid_scan_has_its_input_scanned_once_elsewhere(local_cluster, tiny_weights, run_inputs,
                                                                       local_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    killed: list[int] = []
    dispatch = ray_pool.RayScans._dispatch

    def dispatch_then_kill(self, job, worker):
        reference = dispatch(self, job, worker)
        if Path(job.path).name == "b-long.mp4" and not killed:
            # Kill the worker once its files are half-written: predictions.csv is in, the video not yet.
            deadline = time.monotonic() + 60
            while not list(job.out_dir.parent.glob(".b-long.mp4.*.partial/predictions.csv")):
                assert time.monotonic() < deadline, "the worker never started writing b-long.mp4"
                time.sleep(0.002)
            os.kill(worker.info.pid, signal.SIGKILL)
            killed.append(worker.info.pid)
        return reference

    monkeypatch.setattr(ray_pool.RayScans, "_dispatch", dispatch_then_kill)
    assert _cluster_scan(tiny_weights, run_inputs, out) == 0
    assert killed
    assert f"worker {killed[0]} on " in capsys.readouterr().err
    # Exactly once per input, and the same files as a local run: the dead attempt left nothing behind.
    assert report_inputs(out) == [str(run_inputs / name) for name in RUN_ORDER]
    _assert_same_files(out, local_run)
    assert hidden_entries(out) == []


@pytest.mark.slow  # a local Ray instance and two workers
def test_a_cluster_run_resumes_a_run_that_stopped_half_way(local_cluster, tiny_weights, run_inputs, local_run,
                                                           tmp_path):
    out = tmp_path / "out"
    assert main(["scan", str(run_inputs), "--weights", str(tiny_weights), "--out", str(out), *SCAN_ARGS]) == 0
    # As a run stopped while scanning b-long.mp4 leaves it: its folder half-written under a hidden name, no report.
    for name in ("b-long.mp4", "c-photos"):
        shutil.rmtree(out / "inputs" / name)
    (out / "report.json").unlink()
    half = out / "inputs" / ".b-long.mp4.0123abcd.partial"
    half.mkdir()
    (half / "predictions.csv").write_text("frame_index,time_s\n0,")
    kept = (out / "inputs" / "a-short.mp4" / "summary.json").stat().st_mtime_ns

    assert _cluster_scan(tiny_weights, run_inputs, out, "--resume") == 0
    assert (out / "inputs" / "a-short.mp4" / "summary.json").stat().st_mtime_ns == kept
    assert (out / "inputs" / "b-long.mp4" / "summary.json").is_file()
    _assert_same_files(out, local_run)
    assert hidden_entries(out) == []


@pytest.mark.slow  # starts Ray and its workers in a fresh process
def test_the_command_starts_its_own_ray_instance_without_touching_the_home_folder(tiny_weights, run_inputs,
                                                                                 tmp_path, ray_module):
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join(sys.path))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "fakescope.cli.main", "scan", str(run_inputs / "a-short.mp4"),
                          "--weights", str(tiny_weights), "--out", str(out), *SCAN_ARGS, "--cluster", "ray",
                          "--cluster-workers", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((out / "a-short.mp4" / "summary.json").read_text())["frames_analysed"] == 4
    assert "a-short.mp4: REAL" in run.stdout or "a-short.mp4: FAKE" in run.stdout
    assert not (home / ".ray").exists()  # its token stayed in the environment of the run's own processes
