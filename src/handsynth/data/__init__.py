"""Dataset records (one format for every stage) and dataset folders."""

from handsynth.data.folder import (
    METADATA,
    DatasetWriter,
    atomic_write_bytes,
    atomic_write_file,
    dataset_root,
    encode_file,
    iter_records,
    metadata_path,
    read_dataset,
    write_metadata,
)
from handsynth.data.records import Hand, LocalCrop, RecordError, Sample

__all__ = [
    "METADATA",
    "DatasetWriter",
    "Hand",
    "LocalCrop",
    "RecordError",
    "Sample",
    "atomic_write_bytes",
    "atomic_write_file",
    "encode_file",
    "dataset_root",
    "iter_records",
    "metadata_path",
    "read_dataset",
    "write_metadata",
]
