"""Generation at scale: any method, one job runner (inputs, plan, split, resume, records, sheets)."""

from handsynth.generate.job import Dist, JobConfig, JobResult, run_job
from handsynth.generate.plan import WorkItem, build_plan, item_seed, shard_for_rank
from handsynth.methods.interface import GenerationMethod, GenRequest, GenResult, SamplingConfig

__all__ = [
    "Dist",
    "GenRequest",
    "GenResult",
    "GenerationMethod",
    "JobConfig",
    "JobResult",
    "SamplingConfig",
    "WorkItem",
    "build_plan",
    "item_seed",
    "run_job",
    "shard_for_rank",
]
