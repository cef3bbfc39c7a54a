"""The work plan of a generation job: which image comes from which pose, prompt and seed, on which process.

Everything here is a pure function of the inputs and the arguments, never of the batch size or the
number of processes, so a job split over 8 GPUs, resumed after a kill, or rerun with another batch
size writes the same images under the same ids.
"""

from __future__ import annotations

import hashlib

from handsynth.data.records import Sample
from handsynth.methods.interface import WorkItem  # the plan's unit; methods receive it in a GenRequest


def item_seed(global_seed: int, sample_id: str, prompt_index: int) -> int:
    """A 63-bit seed from (global seed, sample id, prompt index): independent of order and batching."""
    digest = hashlib.sha256(f"{int(global_seed)}\x00{sample_id}\x00{int(prompt_index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def output_id(sample_id: str, prompt_index: int, prompts_per_pose: int) -> str:
    """The pose's id when it gets one image, else ``<id>_<k>`` (unique: k is always the last field)."""
    return sample_id if prompts_per_pose == 1 else f"{sample_id}_{prompt_index}"


def build_plan(samples: list[Sample], prompts_per_pose: int, global_seed: int) -> list[WorkItem]:
    """Poses x prompt indices in input order, each with its output id and seed (prompts filled later)."""
    items = []
    for sample in samples:
        for k in range(prompts_per_pose):
            items.append(
                WorkItem(
                    index=len(items),
                    sample=sample,
                    prompt_index=k,
                    out_id=output_id(sample.id, k, prompts_per_pose),
                    seed=item_seed(global_seed, sample.id, k),
                )
            )
    return items


def shard_for_rank(items: list[WorkItem], rank: int, world_size: int) -> list[WorkItem]:
    """Items of process ``rank``: plan index mod world size (no overlap, no gap, balanced to one item)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size} processes")
    return [it for it in items if it.index % world_size == rank]


def batches(items: list[WorkItem], batch_size: int) -> list[list[WorkItem]]:
    """Consecutive batches of at most ``batch_size`` items."""
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
