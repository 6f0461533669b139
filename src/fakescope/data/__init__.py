"""Datasets: labelled videos with identity groups and splits, and the face-crop cache built from them."""
from fakescope.data.datasets import (
    DatasetError,
    assign_splits,
    available_datasets,
    check_disjoint,
    group_members,
    load_dataset,
    register_dataset,
    summarise,
)
from fakescope.data.items import FAKE, LABEL_NAMES, REAL, DatasetSpec, VideoItem
# The preprocess() function is not re-exported: it would hide its module, fakescope.data.preprocess.
from fakescope.data.preprocess import CropRecord, PreprocessReport, load_index

__all__ = [
    "FAKE",
    "LABEL_NAMES",
    "REAL",
    "CropRecord",
    "DatasetError",
    "DatasetSpec",
    "PreprocessReport",
    "VideoItem",
    "assign_splits",
    "available_datasets",
    "check_disjoint",
    "group_members",
    "load_dataset",
    "load_index",
    "register_dataset",
    "summarise",
]
