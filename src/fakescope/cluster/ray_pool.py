"""``RayScans``: a run's inputs spread over Ray actors that each hold one ``Scanner``, with the results streamed back
as they finish.

Files travel through a shared file system, not through Ray: every node must see the inputs, the weights and the
output folder at the same paths (the NFS or cluster file system an archive lives on). Videos are large and their
outputs larger (an annotated video per input); shipping both through the object store would send every byte
through the machine that runs ``fakescope scan``. Each worker checks on start that it sees the output folder (a
file the run writes there), and before each input that it sees that input; the run stops with a clear error
otherwise.

A worker that dies (killed, out of memory, its node lost) has its input's half-written folder removed (the
folders are written under a hidden name and renamed when complete: ``scan_to_folder(atomic=True)``), the input
handed to another worker, and is replaced by a new one; an input that kills its worker ``max_attempts`` times
is reported as failed. Each input is reported exactly once.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..atomic import AtomicOutput, remove_partial_folders
from ..names import printable
from ..options import AnalysisOptions, FaceOptions, OutputOptions
from ..outputs.runs import ScanJob, run_options_record
from ..results import ScanResult
from ..video import as_source, is_url, source_name

START_TIMEOUT_S = 300.0
"""How long the run waits for a first (or, once all have died, a new) worker to start before giving up."""
MAX_ATTEMPTS = 3
"""Attempts of one input whose worker died each time before it is reported as failed."""


class ClusterError(RuntimeError):
    """The cluster cannot be used as asked (Ray missing, no cluster to join, workers that cannot start or cannot
    see the files); the message says what to do."""


@dataclass(frozen=True)
class WorkerSetup:
    """What each worker loads and how it scans: the same options as a local run."""

    weights: str | None
    allow_untrained: bool
    faces: FaceOptions
    analysis: AnalysisOptions
    outputs: OutputOptions
    cwd: str = field(default_factory=os.getcwd)  # relative paths of the command line resolve there on every node
    device: str = "cpu"
    threads: int = 1
    probe: str = ""  # a file in the output folder every worker must see


@dataclass(frozen=True)
class WorkerInfo:
    """A started worker: where it runs, and the model it loaded (or why it could not start)."""

    node: str
    pid: int
    error: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5


@dataclass(frozen=True)
class ScanReply:
    """A worker's answer for one input: its summary, or the path it could not see."""

    summary: dict[str, Any] | None = None
    unseen: str | None = None


class ScanActor:
    """The body of each Ray actor: one ``Scanner``, loaded once, scanning one input at a time into its folder."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup
        self.scanner: Any = None
        self.error: str | None = None
        try:
            self._load()
        except Exception as error:  # noqa: BLE001 - said by ready(), so the run stops with the reason
            self.error = str(error) or type(error).__name__

    def _load(self) -> None:
        import cv2
        import torch

        from ..analysis import Scanner

        torch.set_num_threads(self.setup.threads)
        cv2.setNumThreads(self.setup.threads)
        try:
            os.chdir(self.setup.cwd)
        except OSError:
            raise ClusterError(f"cannot see the working directory {printable(self.setup.cwd)}") from None
        if self.setup.probe and not os.path.exists(self.setup.probe):
            raise ClusterError(f"cannot see the output folder {printable(str(Path(self.setup.probe).parent))}")
        self.scanner = Scanner.load(self.setup.weights, device=self.setup.device,
                                    allow_untrained=self.setup.allow_untrained, faces=self.setup.faces,
                                    analysis=self.setup.analysis)
        if self.setup.outputs.heatmap:
            self.scanner.build_model()

    def ready(self) -> WorkerInfo:
        node = socket.gethostname()
        if self.scanner is None:
            return WorkerInfo(node, os.getpid(), error=self.error or "no model loaded")
        return WorkerInfo(node, os.getpid(), model=self.scanner.model_info(), threshold=self.scanner.threshold)

    def scan(self, job: ScanJob) -> ScanReply:
        from ..outputs import scan_to_folder

        if not is_url(job.path) and not os.path.lexists(job.path):
            return ScanReply(unseen=str(job.path))
        result = scan_to_folder(self.scanner, job.path, job.out_dir, self.setup.outputs, label=job.label,
                                atomic=True)
        return ScanReply(summary=result.to_summary())


def import_ray() -> Any:
    """The ``ray`` module, or a ClusterError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError("--cluster needs Ray, an optional dependency: pip install 'fakescope[cluster]' "
                           "(on every node of the cluster)") from None
    return ray


def _use_own_token() -> None:
    """Token authentication for a Ray instance this process starts, without writing to the home folder.

    Ray turns token authentication on for a new local instance and saves a token in ~/.ray/auth_token; here,
    unless RAY_AUTH_MODE or a token is already set, this process and the Ray processes it starts share a token of
    their own through the environment (one per process: Ray caches the first it sees)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    has_token = (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                 or (Path.home() / ".ray" / "auth_token").is_file())
    if not has_token:
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    if "ray._raylet" in sys.modules:  # Ray read its configuration when imported: have it read it again
        try:
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):
            pass


def connect(address: str, num_cpus: int | None = None) -> bool:
    """Connect this process to Ray: ``ray`` starts a local instance (``num_cpus``: default all), ``auto`` joins the
    cluster of this machine, ``ray://HOST:PORT`` a Ray client server. Returns whether it connected (False when Ray
    was already initialised in this process, whose connection is then used)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address == "ray":
        _use_own_token()
        try:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, object_store_memory=256 * 1024 * 1024)
        except Exception as error:  # noqa: BLE001 - Ray raises many kinds; all mean "no local instance"
            raise ClusterError(f"could not start a local Ray instance: {error}") from error
        return True
    # Ray retries an address that does not answer for many minutes (a stopped cluster leaves its address behind
    # in /tmp/ray): knock first.
    target = _cluster_address(address)
    if target is not None and not _answers(*target):
        where = f"{target[0]}:{target[1]}"
        raise ClusterError(f"--cluster {address}: nothing answers at {where}"
                           + (" ($RAY_ADDRESS, or the last cluster started on this machine): is it running? Start "
                              "one with `ray start --head`, or use --cluster ray for a local instance"
                              if address == "auto" else ": is the cluster's Ray client server running there?"))
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as error:
        if address == "auto" and target is None:
            hint = ("no Ray cluster is running on this machine: start one with `ray start --head` (and join other "
                    "nodes with `ray start --address=HEAD:6379`), or use --cluster ray for a local instance")
        else:
            hint = ("could not connect: check that the cluster runs and that this machine has its authentication "
                    "token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token of the head node)")
        raise ClusterError(f"--cluster {address}: {hint} ({_last_line(error)})") from error
    except Exception as error:  # noqa: BLE001 - authentication, version mismatch ...: said as Ray says it
        raise ClusterError(f"--cluster {address}: could not connect to Ray: {_last_line(error)}") from error
    return True


RAY_CLIENT_PORT = 10001


def _cluster_address(address: str) -> tuple[str, int] | None:
    """The host and port that ``address`` leads to (``auto``: $RAY_ADDRESS, else the address file Ray leaves in
    its temporary folder), or None where it cannot be told."""
    if address.startswith("ray://"):
        host, _, port = address[len("ray://"):].partition(":")
        return host, int(port) if port else RAY_CLIENT_PORT
    found = os.environ.get("RAY_ADDRESS", "")
    if not found or found == "auto":
        current = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
        try:
            found = current.read_text().strip()
        except OSError:
            return None
    if found.startswith("ray://"):
        return _cluster_address(found)
    host, _, port = found.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def _answers(host: str, port: int, timeout_s: float = 5.0) -> bool:
    """Whether something accepts a TCP connection at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def plan_workers(node_cpus: list[int], gpus: float, workers: int | None, use_gpu: bool) -> tuple[int, int, float]:
    """(workers, CPUs each, GPUs each) for a cluster whose live nodes have ``node_cpus`` and ``gpus`` in all.

    By default one worker per CPU (per GPU on GPUs). Each worker takes the largest equal share of CPUs that still
    lets all of them fit on the nodes, and runs that many threads."""
    total = sum(node_cpus)
    if use_gpu:
        if gpus <= 0:
            raise ClusterError("--device cuda: the cluster has no GPU")
        count = workers or max(1, int(gpus))
        gpus_each = min(1.0, gpus / count)
    else:
        count = workers or total
        if count > total:
            raise ClusterError(f"--cluster-workers {count}: the cluster has {total} CPU{'s' if total != 1 else ''} "
                               "and each worker needs one at least")
        gpus_each = 0.0
    cpus_each = 1
    for share in range(max(total, 1), 0, -1):
        if sum(cpus // share for cpus in node_cpus) >= count:
            cpus_each = share
            break
    return count, cpus_each, gpus_each


@dataclass
class _Worker:
    handle: Any
    info: WorkerInfo | None = None

    def describe(self) -> str:
        return f"worker {self.info.pid} on {self.info.node}" if self.info else "a starting worker"


Notify = Callable[[str], None]


def _print_notice(message: str) -> None:
    print(f"fakescope scan: {message}", file=sys.stderr, flush=True)


class RayScans:
    """Scans a run's jobs on Ray workers: ``start()``, then ``scan(jobs)`` yields each job with its summary as it
    finishes (in any order), then ``close()``.

    ``address``: ``ray`` (a local instance), ``auto`` or ``ray://HOST:PORT``. ``out_root``: the run's output folder,
    which every worker must see. ``device``: ``auto`` (GPU workers when the cluster has GPUs), ``cpu`` or ``cuda``.
    ``notify`` is told of workers that died and where their input went.
    """

    def __init__(self, address: str, setup: WorkerSetup, out_root: Path, workers: int | None = None,
                 device: str = "auto", notify: Notify = _print_notice, start_timeout_s: float = START_TIMEOUT_S,
                 max_attempts: int = MAX_ATTEMPTS) -> None:
        self.address = address
        self.setup = setup
        self.out_root = out_root
        self.requested_workers = workers
        self.device = device
        self.notify = notify
        self.start_timeout_s = start_timeout_s
        self.max_attempts = max_attempts
        self.worker_count = 0
        self.cpus_each = 1
        self.gpus_each = 0.0
        self.nodes = 0
        self.info: WorkerInfo | None = None  # of the first worker that started: the model every summary names
        self._ray: Any = None
        self._connected = False
        self._probe: AtomicOutput | None = None
        self._actor_class: Any = None
        self._workers: list[_Worker] = []  # every worker started, to stop them all
        self._idle: deque[_Worker] = deque()
        self._starting: dict[Any, _Worker] = {}  # ready() reference -> worker
        self._replacements_left = 0
        self._no_worker_since: float | None = None

    # -- starting and stopping -------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, size the pool from the cluster's resources, start the workers and wait for the first."""
        self._ray = ray = import_ray()
        self._connected = connect(self.address)
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        self.nodes = len(nodes)
        node_cpus = [int(node.get("Resources", {}).get("CPU", 0)) for node in nodes]
        gpus = float(ray.cluster_resources().get("GPU", 0))
        use_gpu = self.device.startswith("cuda") or (self.device == "auto" and gpus > 0)
        self.worker_count, self.cpus_each, self.gpus_each = plan_workers(node_cpus, gpus, self.requested_workers,
                                                                         use_gpu)
        self._probe = AtomicOutput(self.out_root / "cluster-check")
        self._probe.temp_path.write_bytes(b"every worker of the run must see this file\n")
        self.setup = replace(self.setup, device="cuda" if use_gpu else "cpu", threads=self.cpus_each,
                             probe=str(self._probe.temp_path.resolve()))
        self._actor_class = ray.remote(ScanActor).options(
            num_cpus=self.cpus_each, num_gpus=self.gpus_each, max_restarts=0, max_task_retries=0,
        )
        for _ in range(self.worker_count):
            self._start_worker()
        self._replacements_left = 2 * self.worker_count
        while not self._idle:
            self._wait_for([])

    def _start_worker(self) -> None:
        worker = _Worker(self._actor_class.remote(self.setup))
        self._workers.append(worker)
        self._starting[worker.handle.ready.remote()] = worker

    @property
    def model(self) -> dict[str, Any]:
        """The model as every summary of the run names it (as the first worker that started loaded it)."""
        return self.info.model if self.info else {}

    @property
    def threshold(self) -> float:
        return self.info.threshold if self.info else 0.5

    def describe(self) -> str:
        """``2 Ray workers on 1 node, 1 CPU each``."""
        share = f"{self.cpus_each} CPU{'s' if self.cpus_each != 1 else ''}"
        if self.gpus_each:
            share += f" and {self.gpus_each:g} GPU"
        return (f"{self.worker_count} Ray worker{'s' if self.worker_count != 1 else ''} on {self.nodes} "
                f"node{'s' if self.nodes != 1 else ''}, {share} each")

    def close(self) -> None:
        """Stop the workers (and the local Ray instance, or the connection, this pool started)."""
        ray = self._ray
        if ray is not None and ray.is_initialized():
            for worker in self._workers:
                try:
                    ray.kill(worker.handle)
                except Exception:  # noqa: BLE001 - already gone
                    pass
            if self._connected:
                ray.shutdown()
        self._workers.clear()
        self._idle.clear()
        self._starting.clear()
        if self._probe is not None:
            self._probe.discard()

    def __enter__(self) -> RayScans:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- scanning --------------------------------------------------------------------------------------------

    def scan(self, jobs: Iterable[ScanJob]) -> Iterator[tuple[ScanJob, dict[str, Any]]]:
        """Each job with its summary, as it finishes. Jobs are taken from ``jobs`` only when a worker is free, so
        a directory of any size streams through."""
        source = iter(jobs)
        retry: deque[ScanJob] = deque()
        attempts: dict[int, int] = {}
        running: dict[Any, tuple[ScanJob, _Worker]] = {}
        exhausted = False
        while True:
            while self._idle and (retry or not exhausted):
                job = retry.popleft() if retry else next(source, None)
                if job is None:
                    exhausted = True
                    break
                worker = self._idle.popleft()
                running[self._dispatch(job, worker)] = (job, worker)
            if not running and exhausted and not retry:
                return
            done = self._wait_for(list(running))
            if done is None:
                continue
            job, worker = running.pop(done)
            try:
                reply: ScanReply = self._ray.get(done)
            except self._ray.exceptions.RayActorError as error:
                attempts[job.index] = attempts.get(job.index, 0) + 1
                failure = self._lost(worker, job, attempts[job.index], error)
                if failure is None:
                    retry.append(job)
                else:
                    yield job, failure
                continue
            except self._ray.exceptions.RayTaskError as error:  # a bug in the worker's own code: this input fails
                self._idle.append(worker)
                yield job, self._failed(job, f"internal error on {worker.describe()}: {error}")
                continue
            if reply.unseen is not None:
                raise ClusterError(
                    f"{worker.describe()} cannot see the input {printable(reply.unseen)}: --cluster needs the "
                    "inputs and --out on a file system every node sees at the same path")
            self._idle.append(worker)
            yield job, reply.summary or self._failed(job, "the worker returned no summary")

    def _dispatch(self, job: ScanJob, worker: _Worker) -> Any:
        """Hand ``job`` to ``worker``; returns the reference of its reply."""
        return worker.handle.scan.remote(job)

    def _wait_for(self, running: list[Any]) -> Any | None:
        """Wait up to a second for a reply among ``running`` or a worker starting; a started worker joins the idle
        ones (None is returned for it). Raises ClusterError when no worker is left and none starts in time."""
        waiting = running + list(self._starting)
        if not waiting:
            raise ClusterError("every worker of the run has died and none could be started again")
        if running or self._idle:
            self._no_worker_since = None
        elif self._no_worker_since is None:
            self._no_worker_since = time.monotonic()
        elif time.monotonic() - self._no_worker_since > self.start_timeout_s:
            raise ClusterError(f"no Ray worker started within {self.start_timeout_s:.0f} s: the cluster may lack the "
                               f"resources asked for ({self.describe()}); see `ray status`")
        done, _ = self._ray.wait(waiting, num_returns=1, timeout=1.0)
        if not done:
            return None
        if done[0] not in self._starting:
            return done[0]
        worker = self._starting.pop(done[0])
        try:
            info: WorkerInfo = self._ray.get(done[0])
        except self._ray.exceptions.RayError as error:
            raise ClusterError(f"a Ray worker could not start: {_last_line(error)}") from error
        if info.error:
            raise ClusterError(f"the Ray worker on {info.node} could not start: {info.error}")
        worker.info = info
        self.info = self.info or info
        self._idle.append(worker)
        return None

    def _lost(self, worker: _Worker, job: ScanJob, attempt: int, error: Exception) -> dict[str, Any] | None:
        """A worker died scanning ``job``: remove what the attempt left, start a replacement (within limits);
        returns the input's failed summary when it has had its attempts, else None (to retry)."""
        remove_partial_folders(job.out_dir)
        name = printable(source_name(as_source(job.path)))
        self._workers.remove(worker)
        if self._replacements_left > 0:
            self._replacements_left -= 1
            self._start_worker()
        if attempt >= self.max_attempts:
            self.notify(f"{worker.describe()} died scanning {name}, for the {attempt}th time: it is reported as "
                        "failed")
            return self._failed(job, f"the cluster worker scanning it died {attempt} times ({_last_line(error)})")
        self.notify(f"{worker.describe()} died scanning {name}; it goes to another worker")
        return None

    def _failed(self, job: ScanJob, reason: str) -> dict[str, Any]:
        """The summary of an input that could not be scanned, as a local run would report it."""
        info = self.info or WorkerInfo("", 0)
        analysis = self.setup.analysis
        result = ScanResult(
            input=str(as_source(job.path)), verdict="error", reason=reason,
            threshold=info.threshold, aggregation=analysis.aggregation, selection=analysis.selection.describe(),
            model=info.model,
            options=run_options_record(self.setup.faces, analysis, self.setup.outputs),
        )
        return result.to_summary()


def _last_line(error: BaseException) -> str:
    """The last non-empty line of an error's text (Ray's carry whole remote tracebacks)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
