"""Tests for fakescope.data.datasets: readers on miniature official layouts, splits, and the real ffpp-mini."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fakescope.data import (
    FAKE,
    REAL,
    DatasetError,
    DatasetSpec,
    VideoItem,
    assign_splits,
    available_datasets,
    check_disjoint,
    load_dataset,
    register_dataset,
    summarise,
)


def touch(root: Path, *relative_paths: str) -> None:
    """Create empty files (readers never decode, so empty stand-ins for videos are enough)."""
    for relative in relative_paths:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def by_key(items: list[VideoItem]) -> dict[str, VideoItem]:
    return {item.key: item for item in items}


# ---------------------------------------------------------------------------------------------------------------
# FaceForensics++


@pytest.fixture()
def ffpp_root(tmp_path: Path) -> Path:
    root = tmp_path / "ffpp"
    touch(
        root,
        *(f"original_sequences/youtube/c23/videos/{i}.mp4" for i in ("000", "001", "002", "003", "004")),
        "original_sequences/actors/c23/videos/01__kitchen.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/001_000.mp4",
        "manipulated_sequences/Face2Face/c23/videos/002_003.mp4",
        "manipulated_sequences/FaceShifter/c23/videos/003_002.mp4",
        "manipulated_sequences/FaceSwap/c23/videos/004_000.mp4",
        "manipulated_sequences/NeuralTextures/c23/videos/002_003.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__kitchen__ABCD1234.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/03_04__hall__XYZ98765.mp4",
        # Other compressions and the mask videos must not leak into a c23 read.
        "original_sequences/youtube/c40/videos/000.mp4",
        "original_sequences/youtube/raw/videos/000.mp4",
        "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4",
    )
    (root / "splits").mkdir()
    for split, pairs in {"train": [["000", "001"], ["004", "009"]], "val": [["002", "003"]], "test": []}.items():
        (root / "splits" / f"{split}.json").write_text(json.dumps(pairs))
    return root


def test_ffpp_reads_official_layout_labels_methods_and_sources(ffpp_root: Path) -> None:
    items = load_dataset(f"ffpp:{ffpp_root}")
    assert [item.key for item in items] == sorted(item.key for item in items)
    assert len(items) == 14
    assert all(item.path.is_absolute() and item.path.is_file() and item.dataset == "ffpp" for item in items)
    items_by_key = by_key(items)
    assert all(item.path == ffpp_root.resolve() / key for key, item in items_by_key.items())

    real = items_by_key["original_sequences/youtube/c23/videos/000.mp4"]
    assert (real.label, real.method, real.source) == (REAL, "original", None)
    actor_real = items_by_key["original_sequences/actors/c23/videos/01__kitchen.mp4"]
    assert (actor_real.label, actor_real.method) == (REAL, "original")
    fake = items_by_key["manipulated_sequences/FaceShifter/c23/videos/003_002.mp4"]
    assert (fake.label, fake.method) == (FAKE, "FaceShifter")
    assert fake.source == "original_sequences/youtube/c23/videos/003.mp4"
    dfd = items_by_key["manipulated_sequences/DeepFakeDetection/c23/videos/01_02__kitchen__ABCD1234.mp4"]
    assert (dfd.label, dfd.method) == (FAKE, "DeepFakeDetection")
    assert dfd.source == "original_sequences/actors/c23/videos/01__kitchen.mp4"
    assert sorted({item.method for item in items}) == [
        "DeepFakeDetection", "Deepfakes", "Face2Face", "FaceShifter", "FaceSwap", "NeuralTextures", "original"]


def test_ffpp_groups_union_identities_in_separate_namespaces(ffpp_root: Path) -> None:
    items = by_key(load_dataset(f"ffpp:{ffpp_root}"))
    group = {key.rsplit("/", 1)[1] + "@" + key.split("/")[1]: item.group for key, item in items.items()}
    # 004_000 links 004 to the 000/001 family; 002/003 form their own.
    assert group["000.mp4@youtube"] == group["001.mp4@youtube"] == group["004.mp4@youtube"]
    assert group["000_001.mp4@Deepfakes"] == group["001_000.mp4@Deepfakes"] == group["004_000.mp4@FaceSwap"]
    # The official train pair [004, 009] links 004 to 009, which this miniature does not hold.
    assert group["000.mp4@youtube"] == "yt:000+yt:001+yt:004+yt:009"
    assert group["002.mp4@youtube"] == group["002_003.mp4@Face2Face"] == group["003_002.mp4@FaceShifter"]
    assert group["002.mp4@youtube"] != group["000.mp4@youtube"]
    # Actor 01 is not youtube video 001: separate namespaces.
    assert group["01__kitchen.mp4@actors"] == group["01_02__kitchen__ABCD1234.mp4@DeepFakeDetection"]
    assert group["01__kitchen.mp4@actors"] == "actor:01+actor:02"
    assert group["03_04__hall__XYZ98765.mp4@DeepFakeDetection"] == "actor:03+actor:04"


def test_ffpp_groups_do_not_depend_on_the_selected_methods(ffpp_root: Path) -> None:
    everything = {item.key: item.group for item in load_dataset(f"ffpp:{ffpp_root}")}
    reals_only = load_dataset(f"ffpp:{ffpp_root}?methods=original")
    assert {item.method for item in reals_only} == {"original"}
    assert all(item.group == everything[item.key] for item in reals_only)
    assert everything["original_sequences/actors/c23/videos/01__kitchen.mp4"] == "actor:01+actor:02"


def test_ffpp_official_splits_and_actor_default(ffpp_root: Path) -> None:
    items = load_dataset(f"ffpp:{ffpp_root}")
    split_of = {item.key.rsplit("/", 1)[1] + "@" + item.method: item.split for item in items}
    assert split_of["000.mp4@original"] == split_of["004_000.mp4@FaceSwap"] == "train"
    assert split_of["003.mp4@original"] == split_of["002_003.mp4@NeuralTextures"] == "val"
    assert split_of["01__kitchen.mp4@original"] == "train"
    check_disjoint(items)
    actors_in_test = load_dataset(f"ffpp:{ffpp_root}?actors_split=test&split=test")
    assert {item.group for item in actors_in_test} == {"actor:01+actor:02", "actor:03+actor:04"}
    val = load_dataset(f"ffpp:{ffpp_root}?split=val")
    assert {item.group for item in val} == {"yt:002+yt:003"} and len(val) == 5


def test_ffpp_without_splits_folder_has_no_split(ffpp_root: Path) -> None:
    for path in (ffpp_root / "splits").iterdir():
        path.unlink()
    (ffpp_root / "splits").rmdir()
    items = load_dataset(f"ffpp:{ffpp_root}")
    assert {item.split for item in items} == {None}
    with pytest.raises(DatasetError, match="no ffpp videos in split 'train'"):
        load_dataset(f"ffpp:{ffpp_root}?split=train")


def test_ffpp_official_splits_that_divide_a_group_are_an_error(ffpp_root: Path) -> None:
    touch(ffpp_root, "manipulated_sequences/Deepfakes/c23/videos/001_002.mp4")  # joins train and val families
    with pytest.raises(DatasetError, match="official splits put identity group"):
        load_dataset(f"ffpp:{ffpp_root}")


def test_ffpp_compression_methods_and_reals_options(ffpp_root: Path) -> None:
    c40 = load_dataset(f"ffpp:{ffpp_root}?compression=c40")
    assert [item.key for item in c40] == ["original_sequences/youtube/c40/videos/000.mp4"]
    raw = load_dataset(f"ffpp:{ffpp_root}?compression=c0")  # the download script's folder for c0 is "raw"
    assert [item.key for item in raw] == ["original_sequences/youtube/raw/videos/000.mp4"]

    deepfakes_only = load_dataset(f"ffpp:{ffpp_root}?methods=deepfakes&reals=0")
    assert {item.method for item in deepfakes_only} == {"Deepfakes"} and len(deepfakes_only) == 2
    with_reals = load_dataset(f"ffpp:{ffpp_root}?methods=Deepfakes")
    assert {item.method for item in with_reals} == {"Deepfakes", "original"}
    reals_only = load_dataset(f"ffpp:{ffpp_root}?methods=original")
    assert {item.label for item in reals_only} == {REAL} and len(reals_only) == 6

    with pytest.raises(DatasetError, match="unknown FaceForensics\\+\\+ method"):
        load_dataset(f"ffpp:{ffpp_root}?methods=Deepfakes,DeepFaceLab")
    with pytest.raises(DatasetError, match="compression"):
        load_dataset(f"ffpp:{ffpp_root}?compression=c99")


def test_ffpp_holdout_moves_whole_families_to_val(ffpp_root: Path) -> None:
    items = load_dataset(f"ffpp:{ffpp_root}?holdout=004")
    val = [item for item in items if item.split == "val"]
    assert {item.group for item in val} == {"yt:000+yt:001+yt:004+yt:009"}
    assert len(val) == 6  # 3 reals + 3 fakes
    assert {item.split for item in items if item not in val} == {"train"}
    check_disjoint(items)
    actor_holdout = load_dataset(f"ffpp:{ffpp_root}?holdout=02&split=val")
    assert {item.group for item in actor_holdout} == {"actor:01+actor:02"}
    with pytest.raises(DatasetError, match="match no group: 777"):
        load_dataset(f"ffpp:{ffpp_root}?holdout=004,777")


# ---------------------------------------------------------------------------------------------------------------
# DFDC


@pytest.fixture()
def dfdc_root(tmp_path: Path) -> Path:
    root = tmp_path / "dfdc"
    parts = {
        "dfdc_train_part_0": {
            "aaa.mp4": {"label": "REAL", "split": "train", "original": None},
            "bbb.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
            "ccc.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
            "gone.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},  # listed, not on disk
        },
        "dfdc_train_part_1": {
            "ddd.mp4": {"label": "REAL", "split": "train", "original": None},
            "eee.mp4": {"label": "FAKE", "split": "train", "original": "ddd.mp4"},
        },
    }
    for part, metadata in parts.items():
        touch(root, *(f"{part}/{name}" for name in metadata if name != "gone.mp4"))
        (root / part / "metadata.json").write_text(json.dumps(metadata))
    touch(root, "test/t1.mp4", "test/t2.mp4")
    (root / "test" / "labels.csv").write_text("filename,label\nt1.mp4,1\nt2.mp4,0\n")
    return root


def test_dfdc_reads_train_parts_with_originals_and_public_test_set(dfdc_root: Path) -> None:
    items = by_key(load_dataset(f"dfdc:{dfdc_root}"))
    assert sorted(items) == ["dfdc_train_part_0/aaa.mp4", "dfdc_train_part_0/bbb.mp4", "dfdc_train_part_0/ccc.mp4",
                             "dfdc_train_part_1/ddd.mp4", "dfdc_train_part_1/eee.mp4", "test/t1.mp4", "test/t2.mp4"]
    real, fake = items["dfdc_train_part_0/aaa.mp4"], items["dfdc_train_part_0/bbb.mp4"]
    assert (real.label, real.method, real.split) == (REAL, "original", "train")
    assert (fake.label, fake.method, fake.source) == (FAKE, "dfdc", "dfdc_train_part_0/aaa.mp4")
    assert real.group == fake.group == items["dfdc_train_part_0/ccc.mp4"].group == "aaa"
    assert items["dfdc_train_part_1/eee.mp4"].group == "ddd"
    assert (items["test/t1.mp4"].label, items["test/t1.mp4"].split) == (FAKE, "test")
    assert (items["test/t2.mp4"].label, items["test/t2.mp4"].method) == (REAL, "original")
    assert len(load_dataset(f"dfdc:{dfdc_root}?split=test")) == 2


def test_dfdc_bad_label_and_missing_layout(dfdc_root: Path, tmp_path: Path) -> None:
    (dfdc_root / "test" / "labels.csv").write_text("filename,label\nt1.mp4,FAKE\n")
    with pytest.raises(DatasetError, match="line 2"):
        load_dataset(f"dfdc:{dfdc_root}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no DFDC layout"):
        load_dataset(f"dfdc:{tmp_path / 'empty'}")


# ---------------------------------------------------------------------------------------------------------------
# Celeb-DF v2


@pytest.fixture()
def celebdf_root(tmp_path: Path) -> Path:
    root = tmp_path / "Celeb-DF-v2"
    touch(
        root,
        "Celeb-real/id0_0000.mp4", "Celeb-real/id0_0001.mp4", "Celeb-real/id1_0000.mp4", "Celeb-real/id2_0000.mp4",
        "YouTube-real/00000.mp4", "YouTube-real/00001.mp4",
        "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id2_id0_0000.mp4", "Celeb-synthesis/id1_id0_0000.mp4",
    )
    # Celeb-DF's own convention: 1 = real, 0 = fake.
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00001.mp4\n1 Celeb-real/id1_0000.mp4\n0 Celeb-synthesis/id1_id0_0000.mp4\n"
    )
    return root


def test_celebdf_labels_groups_and_test_list(celebdf_root: Path) -> None:
    items = by_key(load_dataset(f"celebdf:{celebdf_root}"))
    assert len(items) == 9
    fake = items["Celeb-synthesis/id2_id0_0000.mp4"]
    assert (fake.label, fake.method, fake.source) == (FAKE, "Celeb-synthesis", "Celeb-real/id2_0000.mp4")
    assert items["Celeb-real/id0_0000.mp4"].label == REAL and items["YouTube-real/00000.mp4"].label == REAL
    assert sorted(key for key, item in items.items() if item.split == "test") == [
        "Celeb-real/id1_0000.mp4", "Celeb-synthesis/id1_id0_0000.mp4", "YouTube-real/00001.mp4"]
    assert {item.split for item in items.values()} == {"train", "test"}
    # id0, id1 and id2 are all linked by swaps; each YouTube video is its own group.
    celeb_groups = {item.group for key, item in items.items() if not key.startswith("YouTube")}
    assert celeb_groups == {"id0+id1+id2"}
    assert items["YouTube-real/00000.mp4"].group != items["YouTube-real/00001.mp4"].group


def test_celebdf_list_with_fake_as_1_is_rejected(celebdf_root: Path) -> None:
    # Someone assuming the usual 1 = fake would write this; the reader must not silently flip labels.
    (celebdf_root / "List_of_testing_videos.txt").write_text("1 Celeb-synthesis/id1_id0_0000.mp4\n")
    with pytest.raises(DatasetError, match="listed as real but its folder says fake"):
        load_dataset(f"celebdf:{celebdf_root}")


def test_celebdf_without_test_list_has_no_split(celebdf_root: Path) -> None:
    (celebdf_root / "List_of_testing_videos.txt").unlink()
    assert {item.split for item in load_dataset(f"celebdf:{celebdf_root}")} == {None}


# ---------------------------------------------------------------------------------------------------------------
# Folder and manifest


def test_folder_reader_methods_and_grouping(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    touch(root, "real/a.mp4", "real/person1/b.AVI", "fake/Deepfakes/a.mp4", "fake/c.mov", "fake/person1/d.mkv",
          "fake/notes.txt", "real/.hidden.mp4", "real/.cache/e.mp4")
    items = by_key(load_dataset(f"folder:{root}"))
    assert sorted(items) == ["fake/Deepfakes/a.mp4", "fake/c.mov", "fake/person1/d.mkv", "real/a.mp4",
                             "real/person1/b.AVI"]
    assert (items["real/a.mp4"].label, items["real/a.mp4"].method) == (REAL, "original")
    assert (items["fake/Deepfakes/a.mp4"].label, items["fake/Deepfakes/a.mp4"].method) == (FAKE, "Deepfakes")
    assert items["fake/c.mov"].method == "fake"
    assert items["real/a.mp4"].group == items["fake/Deepfakes/a.mp4"].group == "a"
    by_dir = by_key(load_dataset(f"folder:{root}?group_by=dir"))
    assert by_dir["real/person1/b.AVI"].group == by_dir["fake/person1/d.mkv"].group == "person1"
    with pytest.raises(DatasetError, match="group_by"):
        load_dataset(f"folder:{root}?group_by=year")


def test_manifest_reader_and_bad_label_line(tmp_path: Path) -> None:
    touch(tmp_path, "data/x.mp4", "data/sub/y.mp4", "data/z.mp4")
    manifest = tmp_path / "data" / "list.csv"
    manifest.write_text(
        "path,label,split,group,method\nx.mp4,REAL,train,,\nsub/y.mp4,1,val,g7,Deepfakes\nz.mp4,fake,,,\n")
    items = by_key(load_dataset(f"manifest:{manifest}"))
    assert sorted(items) == ["sub/y.mp4", "x.mp4", "z.mp4"]
    assert (items["x.mp4"].label, items["x.mp4"].split, items["x.mp4"].group, items["x.mp4"].method) == (
        REAL, "train", "x", "original")
    assert (items["sub/y.mp4"].label, items["sub/y.mp4"].group, items["sub/y.mp4"].method) == (FAKE, "g7", "Deepfakes")
    assert (items["z.mp4"].label, items["z.mp4"].split, items["z.mp4"].method) == (FAKE, None, "fake")
    assert items["sub/y.mp4"].path == (tmp_path / "data" / "sub" / "y.mp4").resolve()

    manifest.write_text("path,label\nx.mp4,real\nz.mp4,maybe\n")
    with pytest.raises(DatasetError, match="line 3: label 'maybe'"):
        load_dataset(f"manifest:{manifest}")
    manifest.write_text("path,label\nmissing.mp4,real\n")
    with pytest.raises(DatasetError, match="line 2: no such video file"):
        load_dataset(f"manifest:{manifest}")


# ---------------------------------------------------------------------------------------------------------------
# Registry and errors


def test_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(ValueError, match="unknown dataset kind 'youtube8m'; known: .*celebdf.*ffpp.*manifest"):
        load_dataset("youtube8m:/nowhere")


def test_registering_a_reader_and_option_checking(tmp_path: Path) -> None:
    @register_dataset("tiny-test-kind", options=("flavour",))
    def read_tiny(spec: DatasetSpec) -> list[VideoItem]:
        return [VideoItem(path=spec.root / "v.mp4", label=REAL, dataset="tiny", method=spec.options["flavour"],
                          group="g", key="v.mp4")]

    assert "tiny-test-kind" in available_datasets()
    assert load_dataset(DatasetSpec("tiny-test-kind", tmp_path, {"flavour": "x"}))[0].method == "x"
    with pytest.raises(DatasetError, match="unknown option\\(s\\) flavor"):
        load_dataset(f"tiny-test-kind:{tmp_path}?flavor=x")


def test_missing_root_and_empty_dataset_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="root does not exist"):
        load_dataset(f"ffpp:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no videos found for ffpp"):
        load_dataset(f"ffpp:{tmp_path / 'empty'}")


# ---------------------------------------------------------------------------------------------------------------
# Split helpers


def make_items(groups: dict[str, int]) -> list[VideoItem]:
    return [
        VideoItem(path=Path(f"/v/{group}_{index}.mp4"), label=index % 2, dataset="t", method="m", group=group,
                  key=f"{group}_{index}.mp4")
        for group, count in groups.items() for index in range(count)
    ]


def test_val_fraction_splits_whole_groups_reproducibly() -> None:
    items = make_items({f"g{index}": 1 + index % 3 for index in range(20)})
    first = assign_splits(items, val_fraction=0.25, seed=3)
    assert first == assign_splits(items, val_fraction=0.25, seed=3)
    assert first != assign_splits(items, val_fraction=0.25, seed=4)
    check_disjoint(first)
    val_count = sum(item.split == "val" for item in first)
    assert 0.25 * len(items) <= val_count < 0.25 * len(items) + 3  # stops at the first group past the target
    assert {item.split for item in first} == {"train", "val"}
    with pytest.raises(ValueError, match="exactly one"):
        assign_splits(items)


def test_check_disjoint_names_the_shared_group() -> None:
    items = make_items({"alice": 2, "bob": 1})
    mixed = [replace_split(items[0], "train"), replace_split(items[1], "val"), replace_split(items[2], "train")]
    with pytest.raises(DatasetError, match="alice \\(train, val\\)"):
        check_disjoint(mixed)
    check_disjoint([replace_split(items[0], "train"), replace_split(items[1], None)])


def replace_split(item: VideoItem, split: str | None) -> VideoItem:
    return replace(item, split=split)


def test_summarise_counts(ffpp_root: Path) -> None:
    summary = summarise(load_dataset(f"ffpp:{ffpp_root}"))
    assert (summary["videos"], summary["real"], summary["fake"], summary["groups"]) == (14, 6, 8, 4)
    assert summary["splits"]["train"] == {"videos": 9, "real": 4, "fake": 5, "groups": 3}
    assert summary["splits"]["val"] == {"videos": 5, "real": 2, "fake": 3, "groups": 1}
    assert summary["methods"]["original"] == 6 and summary["methods"]["DeepFakeDetection"] == 2


# ---------------------------------------------------------------------------------------------------------------
# The real ffpp-mini


def test_real_ffpp_mini(ffpp_dir: Path) -> None:
    items = load_dataset(f"ffpp:{ffpp_dir}")
    assert len(items) == 43
    assert sum(item.label == REAL for item in items) == 7 and sum(item.label == FAKE for item in items) == 36
    youtube_groups = {item.group for item in items if item.group.startswith("yt:")}
    assert youtube_groups == {"yt:183+yt:253", "yt:469+yt:481", "yt:585+yt:599"}
    actor_groups = {item.group for item in items if item.group.startswith("actor:")}
    # DFD fakes 01_11, 06_04, 13_03, 18_04, 21_09, 22_23 and the real actor 09: 06 and 18 share source actor 04.
    assert actor_groups == {"actor:01+actor:11", "actor:04+actor:06+actor:18", "actor:03+actor:13",
                            "actor:09+actor:21", "actor:22+actor:23"}
    split_of_group = {item.group: item.split for item in items}
    assert split_of_group["yt:183+yt:253"] == split_of_group["yt:469+yt:481"] == "train"
    assert split_of_group["yt:585+yt:599"] == "val"
    check_disjoint(items)

    held_out = load_dataset(f"ffpp:{ffpp_dir}?holdout=585,599")
    val = [item for item in held_out if item.split == "val"]
    assert sum(item.label == REAL for item in val) == 2 and sum(item.label == FAKE for item in val) == 10
    assert {item.group for item in val} == {"yt:585+yt:599"}
    assert sum(item.split == "train" for item in held_out) == 31
    check_disjoint(held_out)
