"""The recipe of the shipped weights: ffpp-mini plus the real-people corpus, with self-blended fakes, on cached backbone maps.

    .venv/bin/python scripts/corpus_recipe.py crops      # face crops of the corpus and ffpp-mini (resumable)
    .venv/bin/python scripts/corpus_recipe.py cache      # backbone maps of every training/evaluation clip (resumable)
    .venv/bin/python scripts/corpus_recipe.py cv         # leave one ffpp-mini pair out, corpus in every fold
    .venv/bin/python scripts/corpus_recipe.py final      # train on everything, threshold from held-out real videos
    .venv/bin/python scripts/corpus_recipe.py all
    .venv/bin/python scripts/corpus_recipe.py score [--weights CKPT]   # any checkpoint on the held-out videos
    .venv/bin/python scripts/corpus_recipe.py package  # ship the final model (src/fakescope/weights)

Needs the corpus built first (`fakescope corpus build --mirrors DIR --out runs/corpus`). The recipe's settings live
in configs/recipes/corpus-tail03.yaml (the shipped weights'; --config another). Everything lands under runs/ (crops,
feature caches, folds, the final model); each step skips or resumes what an earlier run finished.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))


def load_config(path: Path) -> dict:
    """The recipe at ``path``; one with ``base: OTHER.yaml`` (beside it) is that recipe with these settings merged
    over it, mapping by mapping, so a variant states only what it changes."""
    config = yaml.safe_load(path.read_text())
    base = config.pop("base", None)
    return _merged(load_config(path.parent / base), config) if base else config


def _merged(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def select_records(records: list, rules: dict[str, dict], seed: int) -> list:
    """The crop records of the datasets named in ``rules``, at most ``per_identity`` files per identity and
    ``max_items`` files per dataset (a seeded, repeatable choice); ``roles`` keeps only the identities of those
    held-out roles (``fakescope.data.corpus.held_out_role``: fit, threshold, test)."""
    from fakescope.data.corpus import held_out_role

    by_dataset: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        rule = rules.get(record.dataset)
        if rule is None or ("roles" in rule and held_out_role(record.group) not in rule["roles"]):
            continue
        by_dataset[record.dataset][record.group].append(record)
    chosen = []
    rng = np.random.default_rng(seed)
    for dataset, rule in sorted(rules.items()):
        per_identity = rule.get("per_identity")
        picked = []
        for group in sorted(by_dataset[dataset]):
            rows = sorted(by_dataset[dataset][group], key=lambda r: (r.key, r.frame_index))
            if per_identity and len(rows) > per_identity:
                # Spread over the identity's files (YouTube Faces frames come in video order).
                rows = [rows[i] for i in np.linspace(0, len(rows) - 1, per_identity).round().astype(int)]
            picked.extend(rows)
        if rule.get("max_items") and len(picked) > rule["max_items"]:
            picked = [picked[i] for i in sorted(rng.choice(len(picked), rule["max_items"], replace=False))]
        chosen.extend(picked)
    return chosen


def youtube_faces_landmarks(corpus_dir: Path) -> dict[str, np.ndarray]:
    """File name -> (68, 2) landmarks in the frame's pixels, from the corpus's YouTube Faces keypoint tables."""
    table: dict[str, np.ndarray] = {}
    for path in (corpus_dir / "files/youtube-faces").rglob("*_frames_keypoints.csv"):
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            for row in reader:
                table[row[0]] = np.array(row[1:137], np.float32).reshape(68, 2)
    return table


class CorpusLandmarks:
    """Landmarks of a crop: the YouTube Faces 68 points where the corpus gives them, else dlib's predictor."""

    def __init__(self, corpus_dir: Path, margin: float, size: int) -> None:
        from fakescope.faces.landmarks import LandmarkPredictor

        self.given = youtube_faces_landmarks(corpus_dir) if corpus_dir.is_dir() else {}
        self.predictor = LandmarkPredictor()
        self.margin, self.size = margin, size

    def __call__(self, record, frame: np.ndarray) -> np.ndarray:
        from fakescope.faces.landmarks import face_box_in_crop, points_to_crop

        box = (record.x1, record.y1, record.x2, record.y2)
        given = self.given.get(Path(record.path).name) if record.dataset == "youtube-faces" else None
        if given is not None:
            return points_to_crop(given, box, self.margin, self.size)
        return self.predictor(frame, face_box_in_crop(box, self.margin, self.size))


def step_crops(config: dict) -> None:
    crops = config["crops"]
    for name, spec in (("corpus", f"corpus:{REPO / config['corpus']}/manifest.csv"),
                       ("ffpp-mini", f"ffpp:{SHARED / 'data/ffpp-mini'}")):
        frames = crops["ffpp_frames"] if name == "ffpp-mini" else crops["video_frames"]
        subprocess.run([sys.executable, "-m", "fakescope.cli.main", "preprocess", "--data", spec, "--cache",
                        str(REPO / crops["dirs"][name]), "--frames", str(frames), "--workers", "2", "-q"],
                       check=False, cwd=REPO)


def step_cache(config: dict, only: list[str] | None) -> None:
    import torch

    from fakescope.data.preprocess import load_index
    from fakescope.models import create_model
    from fakescope.models.backbone import StageBackbone
    from fakescope.training.feature_cache import CacheSettings, build_feature_cache, clips_from_records

    torch.set_num_threads(2)
    model_cfg = config["model"]
    model = create_model(model_cfg["name"], backbone_weights=REPO / model_cfg["backbone_weights"])
    size = model.config.input_size
    # Maps cached before the model's last backbone stage leave the stages after it to be fine-tuned.
    stage = model_cfg.get("cache_stage") or model.config.backbone_stage
    backbone = model.backbone if stage == model.config.backbone_stage else StageBackbone(model.backbone, stage)
    corpus_dir = REPO / config["corpus"]
    margin = config["crops"]["margin"]
    records = {name: load_index(REPO / path) for name, path in config["crops"]["dirs"].items()}
    for name, cache in config["caches"].items():
        if only and name not in only:
            continue
        chosen = select_records(records[cache["crops"]], cache["datasets"], config["seed"])
        clips = clips_from_records(chosen, config["clip_length"])
        rng = np.random.default_rng(config["seed"])
        clips = [clips[i] for i in rng.permutation(len(clips))]  # a partial cache is still a mix of everything
        settings = CacheSettings(**cache.get("settings", {}), seed=config["seed"])
        print(f"cache {name}: {len(chosen)} crops in {len(clips)} clips", flush=True)
        summary = build_feature_cache(
            clips, backbone, REPO / config["cache_dir"] / name, settings, size, model.config.mean,
            model.config.std,
            landmarks_factory=(lambda: CorpusLandmarks(corpus_dir, margin, size)) if settings.sbi_copies else None,
            describe={"backbone": model.config.backbone, "stage": stage,
                      "backbone_weights": model_cfg["backbone_weights"]},
        )
        print(f"cache {name}: {json.dumps(summary)[:400]}", flush=True)


PAIRS = ("183,253", "469,481", "585,599")


def _sourced(config: dict, name: str) -> list:
    from fakescope.training.cached_head import SourcedClip
    from fakescope.training.feature_cache import load_cache_index

    cache = REPO / config["cache_dir"] / name
    return [SourcedClip(cache, clip) for clip in load_cache_index(cache)]


def _in_pair(group: str, pair: str) -> bool:
    from fakescope.data import group_members

    ids = set(pair.split(","))
    return any(member.partition(":")[2] in ids for member in group_members(group))


def training_clips(config: dict, holdout: str | None) -> list:
    """The training clips: every training cache, minus any identity that an evaluation set holds (a person of the
    talking-head clips may also be in LFW) and minus the held-out ffpp-mini pair."""
    evaluation_groups = {item.clip.group for name in config["evaluation"]["caches"] for item in _sourced(config, name)
                         if not item.clip.dataset.startswith("ffpp")}
    clips = [item for name in config["training"]["caches"] for item in _sourced(config, name)
             if item.clip.group not in evaluation_groups]
    if holdout:
        clips = [item for item in clips if not (item.clip.dataset == "ffpp" and _in_pair(item.clip.group, holdout))]
    return clips


def train_head(config: dict, clips: list, seed: int, out_dir: Path):
    import torch

    from fakescope.models import create_model
    from fakescope.training.cached_head import train_cached_head

    torch.set_num_threads(2)
    model_cfg = config["model"]
    # `overrides` change the registered model's config (e.g. its pool); the checkpoint records the result.
    model = create_model(model_cfg["name"], backbone_weights=REPO / model_cfg["backbone_weights"],
                         **model_cfg.get("overrides", {}))
    train = config["training"]
    return train_cached_head(model, clips, steps=train["steps"], still_batch=train["still_batch"],
                             video_batch=train["video_batch"], lr=train["lr"],
                             weight_decay=train.get("weight_decay", 0.0),
                             sbi_share_of_fakes=train["sbi_share_of_fakes"],
                             feature_noise=train.get("feature_noise", 0.0),
                             mix_statistics=train.get("mix_statistics", 0.0), seed=seed, out_dir=out_dir,
                             single_frame=train.get("single_frame", False), cache_stage=model_cfg.get("cache_stage"),
                             tail_lr_scale=train.get("tail_lr_scale", 0.1),
                             label_smoothing=train.get("label_smoothing", 0.0),
                             ema_decay=train.get("ema_decay"), ema_start=train.get("ema_start", 0),
                             paired_batches=train.get("paired_batches", False),
                             source_of=original_videos(config) if train.get("paired_batches") else None)


def original_videos(config: dict) -> dict[str, str]:
    """Manipulated video key -> the key of the original it was made from, for every crop that records one."""
    from fakescope.data.preprocess import load_index

    return {record.key: record.source for path in config["crops"]["dirs"].values()
            for record in load_index(REPO / path) if record.source}


LAST_STEP = "model-last-step.safetensors"  # beside an averaged model: the weights of its last step


def load_or_train(config: dict, clips: list, run_dir: Path, recipe: str):
    """The model of ``run_dir/model.safetensors`` if an earlier run left one, else a newly trained one (saved
    there, with the evaluation window in its config and ``recipe``, the config's file name, in its info). A recipe
    with weight averaging (``ema_decay``) also saves its last step's own weights, as ``LAST_STEP``."""
    from fakescope.models import CheckpointMeta, load_checkpoint, save_checkpoint

    path = run_dir / "model.safetensors"
    if path.is_file():
        return load_checkpoint(path)[0].eval()
    # training.seed: another draw of the same recipe (initialisation, batches, augmentation) on the same caches
    model = train_head(config, clips, config["training"].get("seed", config["seed"]), run_dir)
    model.config = model.config.replace(window=config["evaluation"]["window"])
    last_step = getattr(model, "last_step_state", None)
    if last_step is not None:
        averaged = {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict(last_step)
        save_checkpoint(run_dir / LAST_STEP, model, CheckpointMeta(trained=True, threshold=0.5,
                                                                   info={"recipe": recipe, "weights": "last step"}))
        model.load_state_dict(averaged)
    save_checkpoint(path, model, CheckpointMeta(trained=True, threshold=0.5, info={"recipe": recipe}))
    return model


def evaluation_scores(config: dict, model) -> dict:
    from fakescope.training.cached_head import score_cached_videos

    clips = [item for name in config["evaluation"]["caches"] for item in _sourced(config, name)]
    return score_cached_videos(model, clips, window=config["evaluation"]["window"],
                               cache_stage=config["model"].get("cache_stage"))


def step_cv(config: dict, out: Path, recipe: str) -> dict:
    """Leave one ffpp-mini pair out, the corpus in every fold; writes ``cv/summary.json``. For a recipe with weight
    averaging, the same folds measured with each fold's last-step weights go to ``cv/summary-last-step.json``."""
    from fakescope.models import load_checkpoint

    pairs = config["evaluation"].get("pairs", PAIRS)
    fold_scores: dict[str, dict[str, dict]] = {"": {}, "-last-step": {}}
    for pair in pairs:
        fold_dir = out / "cv" / pair.replace(",", "_")
        scores_path = fold_dir / "scores.json"
        if not scores_path.is_file():
            fold_dir.mkdir(parents=True, exist_ok=True)
            model = load_or_train(config, training_clips(config, pair), fold_dir, recipe)
            scores_path.write_text(json.dumps(evaluation_scores(config, model), indent=1) + "\n")
        fold_scores[""][pair] = json.loads(scores_path.read_text())
        last_path = fold_dir / "scores-last-step.json"
        if (fold_dir / LAST_STEP).is_file() and not last_path.is_file():
            model = load_checkpoint(fold_dir / LAST_STEP)[0].eval()
            last_path.write_text(json.dumps(evaluation_scores(config, model), indent=1) + "\n")
        if last_path.is_file():
            fold_scores["-last-step"][pair] = json.loads(last_path.read_text())
    summaries = {}
    for suffix, by_pair in fold_scores.items():
        if len(by_pair) != len(pairs):
            continue
        label = "last-step weights: " if suffix else ""
        summary = cv_summary(config, by_pair, label)
        (out / "cv" / f"summary{suffix}.json").write_text(json.dumps(summary, indent=1) + "\n")
        summaries[suffix] = summary
    return summaries[""]


def cv_summary(config: dict, by_pair: dict[str, dict], label: str = "") -> dict:
    """The cross-validation measures of each fold's scores (pair -> scores of ``evaluation_scores``), printed."""
    from fakescope.training.cached_head import video_metrics

    folds = []
    for pair, scores in by_pair.items():
        held = {k: v for k, v in scores.items() if v["dataset"] == "ffpp" and _in_pair(v["group"], pair)}
        threshold = calibrated_threshold(config, scores)
        measures = report(config, scores, threshold)
        folds.append({"held_out": pair, **video_metrics(held), "scores": scores,
                      "calibrated_threshold": threshold,
                      "held_out_fakes_called_fake": int(sum(v["p_fake"] >= threshold for v in held.values()
                                                            if v["label"])),
                      "held_out_reals_called_fake": int(sum(v["p_fake"] >= threshold for v in held.values()
                                                            if not v["label"])),
                      "unseen_test_reals_called_fake": measures["false_alarms"]["test"],
                      "cross_dataset_auc": measures["cross_dataset"]["video_auc"]})
        fold = folds[-1]
        print(f"{label}fold {pair}: video AUC {fold['video_auc']:.3f}, frame AUC {fold['frame_auc']:.3f}; "
              f"reals {[round(v['p_fake'], 3) for v in held.values() if v['label'] == 0]}; at the calibrated "
              f"threshold {threshold:.3f}: fakes caught {fold['held_out_fakes_called_fake']}/{fold['fake']}, "
              f"reals called fake {fold['held_out_reals_called_fake']}/{fold['real']}, unseen test reals "
              f"{fold['unseen_test_reals_called_fake']}; cross-dataset AUC {fold['cross_dataset_auc']:.3f}",
              flush=True)
    summary = {
        "mean_video_auc": float(np.mean([f["video_auc"] for f in folds])),
        "mean_frame_auc": float(np.mean([f["frame_auc"] for f in folds])),
        "mean_cross_dataset_auc": float(np.mean([f["cross_dataset_auc"] for f in folds])),
        "fakes_caught_at_calibrated": f"{sum(f['held_out_fakes_called_fake'] for f in folds)}/"
                                      f"{sum(f['fake'] for f in folds)}",
        "folds": [{k: v for k, v in f.items() if k != "scores"} for f in folds],
    }
    print(f"{label}cross-validation: mean video AUC {summary['mean_video_auc']:.3f}, "
          f"mean frame AUC {summary['mean_frame_auc']:.3f}, mean cross-dataset AUC "
          f"{summary['mean_cross_dataset_auc']:.3f}, held-out fakes caught at the calibrated thresholds "
          f"{summary['fakes_caught_at_calibrated']}", flush=True)
    return summary


def held_out_reals(scores: dict, datasets: list[str]) -> tuple[list[float], list[float]]:
    """(calibration, test) p_fake of the held-out real videos of ``datasets``."""
    from fakescope.data.corpus import is_calibration_identity

    calibration, test = [], []
    for video in scores.values():
        if video["label"] == 0 and video["dataset"] in datasets:
            (calibration if is_calibration_identity(video["group"]) else test).append(video["p_fake"])
    return calibration, test


def calibrated_threshold(config: dict, scores: dict) -> float:
    """The lowest threshold that keeps the calibration half of the held-out real videos at the target false-alarm
    rate."""
    from fakescope.evaluation.metrics import threshold_for_false_alarm_rate

    calibration, _ = held_out_reals(scores, config["threshold"]["datasets"])
    rate = config["threshold"]["max_false_alarm"]
    return threshold_for_false_alarm_rate(calibration, rate)


def report(config: dict, scores: dict, threshold: float) -> dict:
    """The measures of the issue on cached evaluation videos: false alarms on unseen real people, cross-dataset."""
    from sklearn.metrics import roc_auc_score

    rule = config["threshold"]
    calibration, test = held_out_reals(scores, rule["datasets"])
    cross = [v for v in scores.values() if v["dataset"] in config["evaluation"]["cross_dataset"]]
    unseen_reals = {name: [v["p_fake"] for v in scores.values() if v["label"] == 0 and v["dataset"] == name]
                    for name in [*rule["datasets"], *config["evaluation"]["cross_dataset"]]}
    return {
        "threshold": threshold,
        "false_alarms": {
            "calibration": {"videos": len(calibration), "called_fake": int(np.sum(np.array(calibration) >= threshold))},
            "test": {"videos": len(test), "called_fake": int(np.sum(np.array(test) >= threshold))},
            **{name: {"videos": len(v), "called_fake": int(np.sum(np.array(v) >= threshold))}
               for name, v in unseen_reals.items()},
        },
        "cross_dataset": {"videos": len(cross), "fake": sum(v["label"] for v in cross),
                          "video_auc": float(roc_auc_score([v["label"] for v in cross],
                                                           [v["p_fake"] for v in cross])),
                          "fakes_called_fake": int(sum(v["p_fake"] >= threshold for v in cross if v["label"]))},
    }


def step_final(config: dict, out: Path, recipe: str) -> Path:
    from fakescope.models import load_checkpoint, save_checkpoint

    run_dir = out / "final"
    run_dir.mkdir(parents=True, exist_ok=True)
    model = load_or_train(config, training_clips(config, None), run_dir, recipe)
    scores = evaluation_scores(config, model)
    (run_dir / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    threshold = calibrated_threshold(config, scores)
    rate = config["threshold"]["max_false_alarm"]
    summary = report(config, scores, threshold)
    cv_path = out / "cv" / "summary.json"
    if cv_path.is_file():
        summary["cross_validation"] = json.loads(cv_path.read_text())
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1), flush=True)
    model, meta = load_checkpoint(run_dir / "model.safetensors")
    meta.threshold = threshold
    meta.info.update({"threshold_rule": f"{1 - rate:.0%} quantile of held-out calibration real videos"})
    return save_checkpoint(run_dir / "model.safetensors", model, meta)


def check_frozen_stages(config: dict, model, weights: Path) -> None:
    """Cached maps stand for a checkpoint only if its backbone up to the cache's stage is the one the cache was made
    with: refuse it otherwise. (The weights shipped today were trained by `fakescope train` with the backbone frozen
    but its BatchNorm layers in training mode, so their running statistics moved: scored from the cache, they look
    far worse on real videos than they scan.)"""
    import torch

    from fakescope.models import create_model

    model_cfg = config["model"]
    reference = create_model(model_cfg["name"], backbone_weights=REPO / model_cfg["backbone_weights"]).backbone
    stage = model_cfg.get("cache_stage") or reference.stage
    names = [name for name, _ in reference.named_children()]
    cached = tuple(f"{name}." for name in names[: names.index(stage) + 1])
    theirs = model.backbone.state_dict()
    # fp16-packaged weights differ by rounding only; num_batches_tracked changes nothing in evaluation.
    differing = [key for key, value in reference.state_dict().items()
                 if key.startswith(cached) and not key.endswith("num_batches_tracked")
                 and not torch.allclose(value.float(), theirs[key].float(), rtol=1e-2, atol=1e-3)]
    if differing:
        sys.exit(f"{weights}: its backbone up to {stage} differs from the one the cache was made with "
                 f"({len(differing)} tensors, e.g. {differing[0]}), so the cached maps do not stand for it; "
                 "measure it with fakescope scan instead")


def step_score(config: dict, weights: Path, window: int | None) -> dict:
    """Any checkpoint on the cached evaluation videos: at its own threshold and at one calibrated as the recipe's."""
    from fakescope.models import load_checkpoint
    from fakescope.training.cached_head import score_cached_videos, video_metrics

    model, meta = load_checkpoint(weights)
    check_frozen_stages(config, model, weights)
    clips = [item for name in config["evaluation"]["caches"] for item in _sourced(config, name)]
    scores = score_cached_videos(model.eval(), clips, window=window or model.config.window,
                                 cache_stage=config["model"].get("cache_stage"))
    calibrated = calibrated_threshold(config, scores)
    ffpp = {k: v for k, v in scores.items() if v["dataset"] == "ffpp"}
    result = {"weights": str(weights), "window": window or model.config.window,
              "own_threshold": report(config, scores, meta.threshold),
              "calibrated_threshold": report(config, scores, calibrated),
              "ffpp_all_videos": video_metrics(ffpp),
              "ffpp_fakes_called_fake_at_calibrated": int(sum(v["p_fake"] >= calibrated for v in ffpp.values()
                                                              if v["label"]))}
    print(json.dumps(result, indent=1))
    return result


def same_weights(scanned: Path, scanned_sha256: str | None, source: Path) -> bool:
    """Whether the checkpoint a held-out scan used is ``source`` or its fp16 copy (the packaged file: its scans are
    the ones users get, and fp16 moves a score by a few thousandths, enough to cross a threshold)."""
    import torch

    from fakescope.models import load_checkpoint
    from fakescope.models.checkpoint import sha256_file

    if not scanned.is_file() or sha256_file(scanned) != scanned_sha256:
        return False
    if scanned_sha256 == sha256_file(source):
        return True
    theirs, ours = load_checkpoint(scanned)[0].state_dict(), load_checkpoint(source)[0].state_dict()
    return theirs.keys() == ours.keys() and all(
        torch.equal(theirs[k].half().float(), ours[k].half().float()) for k in ours if ours[k].is_floating_point())


def step_package(config_path: Path, out: Path, last_step: bool = False, held_out_scan: Path | None = None) -> None:
    """Ship the final model (``src/fakescope/weights``) with its figures in the weights' record.

    ``last_step``: for a recipe with weight averaging, ship the last step's own weights (with the folds' last-step
    figures) instead of the averaged ones. ``held_out_scan``: the ``--json`` of ``benchmarks/held_out_scan.py
    --calibrate`` run on that checkpoint: the shipped threshold is then the one chosen on the calibration half's
    *scans* (what a user's `fakescope scan` computes) rather than on their cached maps, and the record's held-out
    figures are that scan's."""
    from fakescope.models import load_checkpoint, save_checkpoint
    from fakescope.weights import package_weights, weights_dir

    suffix = "-last-step" if last_step else ""
    cv = json.loads((out / "cv" / f"summary{suffix}.json").read_text())
    final = json.loads((out / "final" / "summary.json").read_text())
    source = out / "final" / (LAST_STEP if last_step else "model.safetensors")
    model, meta = load_checkpoint(source)
    threshold = final["threshold"]
    threshold_rule = ("the lowest keeping at most 5% of held-out calibration real videos (talking-head, GRID "
                      "identities) above it")
    held_out = {"threshold": threshold, "false_alarms": final["false_alarms"],
                "cross_dataset": final["cross_dataset"]}
    if last_step:  # the final summary measured the averaged weights: measure the shipped ones
        config = load_config(config_path)
        scores = evaluation_scores(config, model)
        threshold = calibrated_threshold(config, scores)
        held_out = report(config, scores, threshold)
    if held_out_scan:
        scanned = json.loads(held_out_scan.read_text())
        if not same_weights(Path(scanned.get("weights", "")), scanned.get("weights_sha256"), source):
            sys.exit(f"{held_out_scan} scanned other weights than {source} (or than their fp16 copy, the shipped "
                     f"file): run benchmarks/held_out_scan.py --weights CKPT --calibrate --json {held_out_scan}")
        if not scanned.get("threshold_rule", "").startswith("calibration half"):
            sys.exit(f"{held_out_scan}: not calibrated (run benchmarks/held_out_scan.py with --calibrate)")
        threshold = scanned["threshold"]
        threshold_rule += " as `fakescope scan` scores them (benchmarks/held_out_scan.py --calibrate)"
        # Both measures, each at the threshold it was taken at (the cached one chose its own).
        held_out = {"cached": held_out,
                    "scanned": {k: scanned[k] for k in ("threshold", "frames", "false_alarms", "cross_dataset")}}
    else:
        threshold_rule += " as their cached maps score them"
    cross_validation = {
        "recipe": str(config_path.relative_to(REPO)) if config_path.is_relative_to(REPO) else str(config_path),
        "weights": "last step" if last_step else "final",
        "mean_video_auc": cv["mean_video_auc"], "mean_frame_auc": cv["mean_frame_auc"],
        "mean_cross_dataset_auc": cv.get("mean_cross_dataset_auc"),
        "fakes_caught_at_calibrated": cv.get("fakes_caught_at_calibrated"),
        "threshold": threshold,
        "threshold_rule": threshold_rule,
        "folds": [{k: f[k] for k in ("held_out", "videos", "video_auc", "frame_auc")} for f in cv["folds"]],
    }
    meta.threshold = threshold
    meta.info.update({"threshold_rule": threshold_rule})
    shipped = save_checkpoint(out / "final" / f"shipped{suffix}.safetensors", model, meta)
    record = package_weights(shipped, REPO / "src/fakescope/weights",
                             extra={"cross_validation": cross_validation, "held_out": held_out})
    print(f"packaged {source} at threshold {threshold:.4f}: {record['bytes'] / 1e6:.1f} MB, sha256 "
          f"{record['sha256']} into {weights_dir()}")


def check_run_config(config: dict, out: Path) -> None:
    """Folds and final model in ``out`` are reused by later runs, so they must come from the same settings:
    the first run records its config there, and a run with other settings is refused."""
    record = out / "recipe.json"
    settings = json.dumps(config, sort_keys=True)
    if record.is_file():
        if json.loads(record.read_text()) != json.loads(settings):
            sys.exit(f"{out} holds runs of other recipe settings ({record}); pass another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["crops", "cache", "cv", "final", "all", "score", "package"])
    parser.add_argument("--weights", type=Path, help="score step: the checkpoint to score (default: the shipped one)")
    parser.add_argument("--window", type=int, help="score step: RNN window (default: the checkpoint's)")
    parser.add_argument("--config", type=Path, default=REPO / "configs/recipes/corpus-tail03.yaml")
    parser.add_argument("--only", nargs="*", help="cache step: only these caches")
    parser.add_argument("--out", type=Path, default=REPO / "runs/corpus-tail03", help="folds and final model")
    parser.add_argument("--last-step", action="store_true",
                        help="package step: ship an averaged recipe's last-step weights instead of the averaged ones")
    parser.add_argument("--held-out-scan", type=Path,
                        help="package step: threshold and held-out figures from this benchmarks/held_out_scan.py "
                             "--calibrate --json output (of the same weights)")
    args = parser.parse_args()
    config = load_config(args.config)
    if args.step in ("cv", "final", "all", "package"):
        check_run_config(config, args.out)
    if args.step in ("crops", "all"):
        step_crops(config)
    if args.step in ("cache", "all"):
        step_cache(config, args.only)
    if args.step in ("cv", "all"):
        step_cv(config, args.out, args.config.name)
    if args.step in ("final", "all"):
        step_final(config, args.out, args.config.name)
    if args.step == "package":  # never part of "all": shipping is a decision (docs/MODEL_CARD.md)
        step_package(args.config, args.out, args.last_step, args.held_out_scan)
    if args.step == "score":
        from fakescope.weights import default_weights_path

        step_score(config, args.weights or default_weights_path(), args.window)


if __name__ == "__main__":
    main()
