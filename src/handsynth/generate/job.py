"""The generation job: inputs -> checked plan -> images written as dataset records, resumable, split
over processes.

Layout of the output folder (a normal dataset folder, see docs/format.md and docs/generate.md)::

    metadata.jsonl              merged records, in plan order (written atomically at the end)
    handsynth_run.json          the job's settings; a resume with other settings is refused
    images/<id>.png             generated images (local/image/<id>.png: the local branch's crop)
    conditions/<map>/<pose>.png the condition maps used (shared by the K images of a pose)
    .parts/rank-<r>/metadata.jsonl  records written by process r since the last merge
    contact_sheet.png, attention/<id>.png, attention_sheet.png

Crash safety: a sample's files are written through temp files + renames, then its record line is
appended (fsynced) to its process's part file. A kill at any moment leaves whole samples; the next run
treats the union of metadata.jsonl and every part file as done, whatever the number of processes was.
Process r takes plan items with index mod world_size == r; the merge at the end orders records by plan
index, so the folder does not depend on the number of processes or the batch size.
"""

from __future__ import annotations

import copy
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from handsynth.data import (
    DatasetWriter,
    LocalCrop,
    Sample,
    atomic_write_file,
    dataset_root,
    iter_records,
    write_metadata,
)
from handsynth.data.carry import absolute_mesh_paths
from handsynth.data.folder import METADATA, refuse_input_as_output
from handsynth.data.lock import FolderLock
from handsynth.errors import UserError
from handsynth.generate import sheets
from handsynth.generate.inputs import Inputs, assign_prompts, check_prompts, load_inputs
from handsynth.generate.plan import WorkItem, batches, build_plan, shard_for_rank
from handsynth.methods.interface import GenerationMethod, GenRequest, GenResult
from handsynth.progress import progress
from handsynth.render.maps import RESIZE, condition_image

log = logging.getLogger(__name__)

PARTS = ".parts"


@dataclass
class JobConfig:
    """Arguments of a job that are not the method's (the method carries its own settings)."""

    inp: str
    out: str
    prompts_per_pose: int = 1
    prompts: str = "auto"  # auto | records | generator | file
    prompt_file: str | None = None
    seed: int = 0
    batch_size: int = 1
    size: int | None = None  # square output size; None: each record's own
    limit: int | None = None  # generate only the first N plan items (a later run may finish the rest)
    shards: int | None = None  # samples per WebDataset shard (written to <out>/shards at the end)
    sheet_rows: int = 8
    overwrite: bool = False
    hand_model: str | None = None  # for bare poses: hand model to render with (None: each record's)
    mano_dir: str | None = None
    threads: int | str = "auto"  # torch CPU threads (handsynth.runtime); recorded in each record's source


@dataclass
class Dist:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    barrier: Callable[[], None] = field(default=lambda: None)
    device: Any = "cpu"

    @classmethod
    def from_accelerate(cls, cpu: bool = False) -> Dist:
        import torch
        from accelerate import PartialState

        # cpu=True on a machine without an accelerator lets a multi-process launch (accelerate launch
        # --multi_gpu / torchrun) form a gloo process group instead of N independent single runs.
        no_gpu = not (torch.cuda.is_available() or torch.backends.mps.is_available())
        state = PartialState(cpu=cpu or no_gpu)
        return cls(state.process_index, state.num_processes, state.wait_for_everyone, state.device)


@dataclass
class JobResult:
    out: Path
    planned: int
    generated: int  # by this process in this run
    total: int  # records in the folder after the merge (rank 0; -1 elsewhere)
    sheet: Path | None = None
    shards: list[Path] = field(default_factory=list)


# -- preparation (no model, no output) -------------------------------------------------------------------
def prepare(method: GenerationMethod, job: JobConfig) -> tuple[Inputs, list[WorkItem], dict]:
    """Everything checkable before the first byte is written: inputs, sizes, prompts, the config."""
    if job.prompts_per_pose < 1:
        raise UserError(f"--prompts-per-pose must be at least 1, got {job.prompts_per_pose}")
    if job.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {job.batch_size}")
    method.check()
    refuse_input_as_output(job.out, job.inp, "generated dataset")
    inputs = load_inputs(job.inp, method.maps, method.needs_local, method.optional_maps)
    for s in inputs.samples:
        w, h = (job.size, job.size) if job.size else (s.width, s.height)
        method.check_size(w, h, f"record {s.id}")
    if inputs.render and not job.mano_dir:
        mano = [s.id for s in inputs.samples if (job.hand_model or s.hands[0].model) == "mano"]
        if mano:
            raise UserError(
                f"record {mano[0]} needs the MANO hand model to render its maps: pass --mano-dir PATH "
                "(the folder holding MANO_RIGHT.pkl / MANO_LEFT.pkl) or --hand-model openhand"
            )
    if inputs.render:  # hands posed from their parameters must match their labels: checked up front
        from handsynth.render.conditions import ConditionRenderer, scale_sample

        renderer = ConditionRenderer(
            hand_model=job.hand_model, model_dir=job.mano_dir, data_root=dataset_root(job.inp)
        )
        for s in inputs.samples:
            renderer.check_record(scale_sample(s, job.size, job.size) if job.size else s)
    items = build_plan(method.plan_samples(inputs.samples), job.prompts_per_pose, job.seed)
    source = "none"
    if method.uses_prompts:
        source = assign_prompts(items, job.prompts, job.seed, job.prompt_file)
        check_prompts(items, method.tokenizer())
    config = {
        "stage": "generate",
        **method.fingerprint(),
        "inputs_sha256": inputs.sha256,
        "prompts_per_pose": job.prompts_per_pose,
        "prompts": source,
        "prompt_file_sha256": _file_sha(job.prompt_file),
        "seed": job.seed,
        "size": job.size,
        "hand_model": job.hand_model if inputs.render else None,
    }
    return inputs, items, config


def _file_sha(path: str | None) -> str | None:
    if path is None:
        return None
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def done_ids(out: Path) -> set[str]:
    """Ids already written: the merged metadata plus every process's part file (torn lines ignored)."""
    ids = {s.id for s in iter_records(out)} if (out / "metadata.jsonl").exists() else set()
    for part in sorted((out / PARTS).glob("rank-*/metadata.jsonl")):
        ids |= {s.id for s in iter_records(part)}
    return ids


# -- one sample's inputs and outputs --------------------------------------------------------------------
def output_sample(sample: Sample, size: int | None) -> Sample:
    """The record at the output size: intrinsics, 2D joints, boxes and the local crop box scaled exactly."""
    if not size or (size, size) == (sample.width, sample.height):
        return copy.deepcopy(sample)
    from handsynth.render.conditions import scale_sample

    out = scale_sample(sample, size, size)
    sx, sy = size / sample.width, size / sample.height
    if sample.local is not None and abs(sx - sy) < 1e-12:
        box = sample.local.box
        out.local = LocalCrop(
            box=[box[0] * sx, box[1] * sx, box[2] * sx],
            size=sample.local.size,
            conditions=dict(sample.local.conditions),
        )
    return out


class SampleSource:
    """Loads (or renders) a work item's record at the output size and its condition maps."""

    def __init__(self, inputs: Inputs, method: GenerationMethod, job: JobConfig) -> None:
        self.inputs = inputs
        self.method = method
        self.job = job
        self._renderer = None
        self._cache: dict[str, tuple[Sample, dict[str, Image.Image], dict[str, Image.Image], dict]] = {}

    def _render(self, sample: Sample) -> tuple[Sample, dict[str, np.ndarray]]:
        if self._renderer is None:
            import os

            os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # headless; must precede any OpenGL import
            from handsynth.render.conditions import ConditionRenderer

            self._renderer = ConditionRenderer(
                hand_model=self.job.hand_model,
                model_dir=self.job.mano_dir,
                data_root=dataset_root(self.job.inp),
            )
        return self._renderer.render_into(
            sample,
            self.method.maps,
            local=self.method.needs_local,
            local_size=max(sample.width, sample.height),
        )

    def _local_from_global(self, sample: Sample, glob: dict, loc: dict, size: int) -> None:
        """The paper's local maps: the global maps cropped by the hand box B (when none were stored).

        Cropped maps are only fed to the method, not written: the record keeps its box, which is all
        a reader needs to crop them again.
        """
        from handsynth.render import crop_box, crop_image

        if sample.local is None:
            box = [float(v) for v in crop_box(sample.union_bbox())]
            sample.local = LocalCrop(box=box, size=size, conditions={})
        for m in self.method.maps:
            if m not in loc and m in glob:
                loc[m] = Image.fromarray(crop_image(np.asarray(glob[m]), sample.local.box, size))

    def get(self, item: WorkItem) -> tuple[Sample, dict[str, Image.Image], dict[str, Image.Image], dict]:
        """(record at output size, global maps, local maps, files to write keyed by relative path).

        Condition files are named by the pose id, so the K images of a pose share them.
        """
        sid = item.sample.id
        if sid in self._cache:
            return self._cache[sid]
        sample = output_sample(item.sample, self.job.size)
        files: dict[str, Any] = {}
        glob: dict[str, Image.Image] = {}
        loc: dict[str, Image.Image] = {}
        if self.inputs.render:
            rendered, arrays = self._render(sample)
            for name, rel in rendered.conditions.items():
                glob[name] = Image.fromarray(arrays[rel])
            if rendered.local is not None:
                for name, rel in rendered.local.conditions.items():
                    loc[name] = Image.fromarray(arrays[rel])
            sample.local = rendered.local
        else:
            root = self.inputs.root
            for name, rel in item.sample.conditions.items():
                with Image.open(root / rel) as im:
                    im.load()
                    glob[name] = im.copy()
            if sample.local is not None:
                for name, rel in sample.local.conditions.items():
                    with Image.open(root / rel) as im:
                        im.load()
                        loc[name] = im.copy()
        # Every input map is carried into the output at the output size; the method reads its own.
        sample.conditions = {}
        for name, im in glob.items():
            rel = f"conditions/{name}/{sid}.png"
            if im.size != (sample.width, sample.height):
                im = im.resize((sample.width, sample.height), RESIZE.get(name, Image.Resampling.BILINEAR))
            glob[name] = im
            sample.conditions[name] = rel
            files[rel] = im
        if sample.local is not None:
            sample.local.conditions = {}
            for name, im in loc.items():
                rel = f"local/{name}/{sid}.png"
                sample.local.conditions[name] = rel
                files[rel] = im
        w, h = sample.width, sample.height
        if self.method.needs_local:
            self._local_from_global(sample, glob, loc, w)
        method_glob = {m: condition_image(m, glob[m], w, h) for m in self.method.maps if m in glob}
        method_loc = {m: condition_image(m, loc[m], w, h) for m in self.method.maps if m in loc}
        self._cache = {sid: (sample, method_glob, method_loc, files)}  # K items of a pose are adjacent
        return self._cache[sid]


def make_record(item: WorkItem, sample: Sample, result: GenResult, provenance: dict) -> tuple[Sample, dict]:
    """The output record of one generated image and the files only it owns (a method that returns its
    own record, e.g. a crop, owns its condition maps too)."""
    rec = copy.deepcopy(sample if result.record is None else result.record)
    rec.id = item.out_id
    rec.file_name = f"images/{item.out_id}.png"
    rec.prompt = item.prompt
    files: dict[str, Any] = {rec.file_name: result.image}
    if result.record is not None:
        rec.conditions = {name: f"conditions/{name}/{item.out_id}.png" for name in result.conditions}
        files.update({rec.conditions[name]: im for name, im in result.conditions.items()})
    if rec.local is not None:
        rec.local.file_name = None  # the input's local photo is not copied; only a generated one is written
    if result.local_image is not None and rec.local is not None:
        rec.local.file_name = f"local/image/{item.out_id}.png"
        local = result.local_image
        if local.size != (rec.local.size, rec.local.size):  # local pixels map back through local.size
            local = local.resize((rec.local.size, rec.local.size), Image.Resampling.BICUBIC)
        files[rec.local.file_name] = local
    rec.source = {
        "generator": "handsynth generate",
        **provenance,
        "seed": item.seed,
        "prompt_index": item.prompt_index,
        "input_id": item.sample.id,
        "input_source": item.sample.source,
    }
    rec.extra = {**rec.extra, "hand_token_indices": list(item.hand_token_indices)}
    return rec, files


# -- the job --------------------------------------------------------------------------------------------
def _same_size_batches(items: list[WorkItem], job: JobConfig) -> list[list[WorkItem]]:
    """Batches of consecutive items with one output size (a batch is one tensor)."""
    out: list[list[WorkItem]] = []
    run: list[WorkItem] = []

    def size(it: WorkItem) -> tuple[int, int]:
        return (job.size, job.size) if job.size else (it.sample.width, it.sample.height)

    for it in items:
        if run and size(run[-1]) != size(it):
            out += batches(run, job.batch_size)
            run = []
        run.append(it)
    return out + (batches(run, job.batch_size) if run else [])


def _reset_folder(out: Path) -> None:
    """--overwrite: forget earlier records and settings (files are overwritten as they are made).

    The attention strips and shards go too: they are not overwritten by a run that makes none (no TAS,
    no --shards), and the sheet drawn at the end would show the earlier run's strips.
    """
    for name in ("metadata.jsonl", "handsynth_run.json", sheets.SHEET, sheets.ATTENTION_SHEET):
        (out / name).unlink(missing_ok=True)
    for folder in (PARTS, sheets.ATTENTION_DIR, "shards"):
        shutil.rmtree(out / folder, ignore_errors=True)


def run_job(method: GenerationMethod, job: JobConfig, dist: Dist | None = None) -> JobResult:
    """Generate every planned image not yet in ``job.out``; resumable, safe to split over processes."""
    dist = dist or Dist()
    inputs, items, config = prepare(method, job)
    with FolderLock(job.out, rank=dist.rank):
        return _run_locked(method, job, dist, inputs, items, config)


def _run_locked(
    method: GenerationMethod, job: JobConfig, dist: Dist, inputs: Inputs, items: list[WorkItem], config: dict
) -> JobResult:
    out = Path(job.out)
    if job.overwrite and dist.rank == 0 and out.exists():
        _reset_folder(out)
    dist.barrier()
    fresh = not (out / "handsynth_run.json").exists()
    DatasetWriter(out, config=config)  # refuses a folder written with other settings, naming them
    try:
        return _run_writer(method, job, dist, inputs, items, out)
    except BaseException:
        if fresh and dist.rank == 0 and not _any_record(out):
            # failed before its first image (a model that does not load, a bad --dtype): the folder
            # must not keep these settings, or the corrected command would be refused as "different"
            (out / "handsynth_run.json").unlink(missing_ok=True)
        raise


def _any_record(out: Path) -> bool:
    return any(
        p.stat().st_size > 0 for p in [out / METADATA, *(out / PARTS).glob(f"*/{METADATA}")] if p.exists()
    )


def _run_writer(
    method: GenerationMethod,
    job: JobConfig,
    dist: Dist,
    inputs: Inputs,
    items: list[WorkItem],
    out: Path,
) -> JobResult:
    planned = items[: job.limit] if job.limit is not None else items
    done = done_ids(out)
    dist.barrier()  # every process has read what is done before anyone writes
    mine = [it for it in shard_for_rank(planned, dist.rank, dist.world_size) if it.out_id not in done]
    generated = 0
    if mine:
        generated = _generate(method, job, inputs, mine, out, dist)
    dist.barrier()
    result = JobResult(out=out, planned=len(planned), generated=generated, total=-1)
    if dist.rank == 0:
        _finish(method, job, items, planned, out, result)
    dist.barrier()
    return result


def _generate(
    method: GenerationMethod, job: JobConfig, inputs: Inputs, mine: list[WorkItem], out: Path, dist: Dist
) -> int:
    import torch

    from handsynth.runtime import configure_threads, is_small_unet

    unet_config = getattr(method, "unet_config", None)
    small = is_small_unet(unet_config()) if callable(unet_config) else False
    threads = configure_threads(job.threads, dist.device, small_model=small)
    method.load(torch.device(dist.device))
    part = DatasetWriter(out / PARTS / f"rank-{dist.rank:05d}")
    source = SampleSource(inputs, method, job)
    provenance = {**method.provenance(), "torch_threads": threads}
    tokenizer = method.tokenizer()
    bar = progress(total=len(mine), desc=f"generate[{dist.rank}]", unit="img", disable=dist.rank != 0)
    writer = SampleWriter(out, part, bar)
    try:
        for batch, inputs_of_batch in _prefetched(source, _same_size_batches(mine, job)):
            requests, samples = [], []
            for it, (sample, glob, loc, files) in zip(batch, inputs_of_batch):
                samples.append((sample, files))
                requests.append(
                    GenRequest(
                        item=it,
                        width=sample.width,
                        height=sample.height,
                        conditions=glob,
                        local_conditions=loc,
                        box=sample.local.box if sample.local is not None else None,
                    )
                )
            results = method.generate(requests)
            for it, (sample, shared_files), res in zip(batch, samples, results):
                rec, own = make_record(it, sample, res, provenance)
                if rec.extra.get("objects"):  # relative mesh paths would not resolve from the output
                    rec.extra["objects"] = absolute_mesh_paths(rec.extra["objects"], inputs.root)
                attention = None
                if res.attention and it.index < job.sheet_rows:
                    names = sheets.token_names(tokenizer, it.prompt, sorted(res.attention))
                    attention = (res, names)
                writer.submit(it, rec, shared_files if res.record is None else {}, own, attention)
    finally:
        writer.close()  # whatever was generated is written (files first, record last) before returning
        bar.close()
    return writer.count


def _prefetched(source: SampleSource, work: list[list[WorkItem]]):
    """Yields (batch, its loaded inputs), loading (or rendering) batch i+1 on one worker thread while
    the caller denoises batch i. Every load runs on that same thread (a renderer's GL context stays
    with the thread that made it)."""
    from concurrent.futures import ThreadPoolExecutor

    def load(batch: list[WorkItem]) -> list:
        return [source.get(it) for it in batch]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="handsynth-inputs") as pool:
        pending = pool.submit(load, work[0]) if work else None
        for i, batch in enumerate(work):
            loaded = pending.result()
            pending = pool.submit(load, work[i + 1]) if i + 1 < len(work) else None
            yield batch, loaded


class SampleWriter:
    """Writes generated samples on a background thread while the next batch is denoised.

    PNG encoding and the fsyncs of each sample (files through temp files + renames, then its record
    line) run beside the denoising loop instead of between batches; torch releases the GIL in its
    kernels, so on a CPU the writer gets the core the sampler leaves. Samples are written in order,
    each one whole before its record line, so a kill still leaves whole samples. A pose's shared
    condition files are written once per run. At most ``max_pending`` samples wait in memory; an
    error on the writer thread is raised in the caller at the next submit or at close.
    """

    def __init__(self, out: Path, part: DatasetWriter, bar: Any = None, max_pending: int = 16) -> None:
        import queue
        import threading

        self.out, self.part, self.bar = out, part, bar
        self.count = 0
        self.error: BaseException | None = None
        self._written: set[str] = set()
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._run, name="handsynth-writer", daemon=True)
        self._thread.start()

    def submit(self, item: WorkItem, rec: Sample, shared: dict, own: dict, attention: Any = None) -> None:
        self._raise()
        self._queue.put((item, rec, shared, own, attention))

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._write(*job)
                except BaseException as err:  # handed to the caller's thread
                    self.error = err

    def _write(self, item: WorkItem, rec: Sample, shared: dict, own: dict, attention: Any) -> None:
        if attention is not None:
            res, names = attention
            strip = sheets.attention_strip(res.image, res.attention, names, f"{item.out_id}: {item.prompt}")
            own[f"{sheets.ATTENTION_DIR}/{item.out_id}.png"] = strip
        # Files go to the dataset folder first; the record line (in this process's part file) last.
        for rel, content in shared.items():
            if rel not in self._written:
                atomic_write_file(self.out / rel, content)
                self._written.add(rel)
        for rel, content in own.items():
            atomic_write_file(self.out / rel, content)
        self.part.write(rec)
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Write what is queued, stop the thread, raise the writer's error if it had one."""
        self._queue.put(None)
        self._thread.join()
        self._raise()


def _finish(
    method: GenerationMethod,
    job: JobConfig,
    items: list[WorkItem],
    planned: list[WorkItem],
    out: Path,
    result: JobResult,
) -> None:
    """Merge the part files into metadata.jsonl in plan order, check completeness, draw the sheets."""
    order = {it.out_id: it.index for it in items}
    records: dict[str, Sample] = {}
    sources = [out] if (out / "metadata.jsonl").exists() else []
    sources += sorted((out / PARTS).glob("rank-*"))
    for src in sources:
        if (Path(src) / "metadata.jsonl").exists():
            for s in iter_records(src):
                if s.id not in order:
                    raise UserError(f"{out} holds record {s.id} that this job does not plan; use a new --out")
                records.setdefault(s.id, s)
    merged = sorted(records.values(), key=lambda s: order[s.id])
    write_metadata(out, merged)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    for tmp in out.rglob(".*.tmp"):  # temp files of writes a kill interrupted (never a finished file)
        tmp.unlink(missing_ok=True)
    result.total = len(merged)
    missing = [it.out_id for it in planned if it.out_id not in records]
    if missing:
        log.warning(
            "%d planned images are missing (first: %s); rerun the same command", len(missing), missing[0]
        )
    first = merged[: job.sheet_rows]
    if first:
        sheet = sheets.generation_sheet(out, first, method.maps)
        atomic_write_file(out / sheets.SHEET, sheet)
        result.sheet = out / sheets.SHEET
        strips = [out / sheets.ATTENTION_DIR / f"{s.id}.png" for s in first]
        att = sheets.attention_sheet(strips)
        if att is not None:
            atomic_write_file(out / sheets.ATTENTION_SHEET, att)
    if job.shards:
        from handsynth.data.shards import write_shards

        result.shards = write_shards(out, out / "shards", job.shards)
