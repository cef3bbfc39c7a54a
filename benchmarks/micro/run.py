"""The micro benchmark: AttentionHand's Table 1 / 2 / 4 claims tested in the micro world, end to end.

    python benchmarks/micro/run.py --profile quick      # smoke run, one seed, <= 15 min on 2 CPU cores
    python benchmarks/micro/run.py --profile full       # the benchmark (3 seeds)
    python benchmarks/micro/run.py --profile full --install-default   # + embed the default model

A resumable pipeline of stages, each skipping when its output exists (kill it and run it again):

    world data -> micro base pretrain -> evaluation tools -> guidance trainings (5 variants x seeds)
      -> generation (7 methods + 2 inference variants x seeds) -> Table 1/4 metrics -> downstream (Table 2) -> report

Every stage goes through the project's own commands/APIs (``handsynth world render``, ``handsynth
train``, ``handsynth generate``, ``handsynth recon train|eval``, ``handsynth.eval.evaluate_images``);
only the micro base and the world's evaluation tools (feature extractor, 2D detector) are trained by
``handsynth.micro``. Budgets are in ``benchmarks/micro/config.yaml``. Outputs go to
``outputs/micro/<profile>/``; the report to ``benchmarks/results/micro[_<profile>].md`` + ``.json``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CONFIG = HERE / "config.yaml"
RESULTS = REPO / "benchmarks" / "results"
TRIVIAL_SET = "Trivial: blank images"
SHUFFLED = "shuffled"  # the shuffled-label control set (gen/shuffled/seed<k>)
ORACLE_SET = "Oracle: real wild, same poses"


# -- configuration -----------------------------------------------------------------------------------------
# Table 2's own pose split and its oracle photos (config ``table2``; issue 11 §4: >= 1,000 images per set).
T2_POSES, T2_ORACLE = "lab_t2", "wild_t2"


def _merge(base: dict, new: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in new.items():
        if k == "methods":  # a profile's method list replaces the full one
            out[k] = copy.deepcopy(v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_profile(
    name: str, config: Path = CONFIG, override: str | None = None, suite: str | None = None
) -> dict:
    """The ``common`` budget with profile ``name`` merged over it (and profile ``override`` over that:
    ``--profile gpu --override tiny`` runs the GPU profile's settings at test size on a CPU).
    ``suite``: a ``suites`` section merged over ``common`` first, its own per-profile section after
    each profile (a suite's method list wins over a profile's)."""
    data = yaml.safe_load(config.read_text())
    for p in (name, override):
        if p is not None and p not in data["profiles"]:
            raise SystemExit(f"unknown profile {p!r}; choose from {', '.join(data['profiles'])}")
    suites = data.get("suites") or {}
    if suite is not None and suite not in suites:
        raise SystemExit(f"unknown suite {suite!r}; choose from {', '.join(suites) or 'none'}")
    spec = copy.deepcopy(suites.get(suite) or {})
    per_profile = spec.pop("profiles", None) or {}
    cfg = _merge(data["common"], spec)

    def apply(profile: str, cfg: dict) -> dict:
        own = copy.deepcopy(data["profiles"][profile] or {})
        if suite is not None and "methods" not in (per_profile.get(profile) or {}):
            own.pop("methods", None)  # the default suite's rows are not this suite's
        return _merge(_merge(cfg, own), per_profile.get(profile) or {})

    cfg = apply(name, cfg)
    if override:
        cfg = apply(override, cfg)
        # The override's small sizes win, but the profile's structure (size, widths) stays testable.
        for key in ("size",):
            if key in (data["profiles"][name] or {}):
                cfg[key] = data["profiles"][name][key]
    table2 = cfg.get("table2")
    if table2:  # Table 2's own held-out poses and their real wild photos, drawn like lab_gen / wild_gen
        world = cfg["world"]
        world[T2_POSES] = {**world["lab_gen"], "n": table2["n"], "seed": table2["seed"]}
        world[T2_ORACLE] = {**world["wild_gen"], "seed": table2["oracle_seed"], "poses": T2_POSES}
    cfg["profile"] = name if not override else f"{name}+{override}"
    if suite is not None:  # the default suite's config (and report json) stay as they were
        cfg["suite"] = suite
    return cfg


# -- running commands --------------------------------------------------------------------------------------
def job_env(threads: int = 1) -> dict:
    env = dict(os.environ)
    # One torch thread per job: on this shared 2-core machine two contending threads per process were
    # measured ~8x slower than one (BLAS spin-waiting); parallelism comes from running jobs side by side.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("PYOPENGL_PLATFORM", "egl")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def handsynth_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("handsynth")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "handsynth.cli"]


def work_folder(arg: str | None, name: str) -> Path:
    """The run's folder: ``--work`` or outputs/micro/NAME. Jobs run in REPO, so a relative ``--work``
    given from another directory is made absolute; one given from REPO stays relative (a resumed run's
    recorded paths keep matching)."""
    work = Path(arg) if arg else REPO / "outputs" / "micro" / name
    if not work.is_absolute() and Path.cwd().resolve() != REPO:
        work = work.resolve()
    return work


def shown_path(path: str | Path) -> str:
    """A path as a reader of a record can follow it: relative to the repository when inside it, else
    from its ``outputs/`` or ``src/handsynth/assets/`` part on (another checkout on the same machine)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        text = str(path)
    for marker in ("outputs/", "src/handsynth/assets/"):
        if marker in text:
            return text[text.index(marker) :]
    return text


class Runner:
    """Stages of one profile; every output under ``work``; timings appended to ``timings.json``."""

    def __init__(self, cfg: dict, work: Path, verbose: bool = False, create: bool = True) -> None:
        self.cfg = cfg
        self.work = work
        self.verbose = verbose
        self.reuse_from: Path | None = None  # --reuse-from: a work folder whose base/tools may be copied
        self._fingerprints: dict[str, str] = {}  # split -> split_fingerprint (every recipe reads wild_train)
        self.log_dir = work / "logs"
        if create:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self.timings_path = work / "timings.json"
        self.timings = json.loads(self.timings_path.read_text()) if self.timings_path.exists() else {}
        # parallel() runs jobs in threads; they share timings.json and its temporary file
        self._timings_lock = threading.RLock()
        self.jobs_done = 0  # jobs run by this invocation (a stage that ran none only skipped)

    # paths
    def data(self, split: str) -> Path:
        return self.work / "data" / split

    @property
    def base(self) -> Path:
        return self.work / "base"

    def tool(self, name: str) -> Path:
        return self.work / "tools" / name

    def run_dir(self, method: str, seed: int) -> Path:
        return self.work / "runs" / method / f"seed{seed}"

    def gen_dir(self, method: str, seed: int) -> Path:
        return self.work / "gen" / method / f"seed{seed}"

    def t2_gen_dir(self, method: str, seed: int) -> Path:
        """Where ``method`` draws Table 2's own poses (profiles with ``table2``)."""
        return self.work / "gen_t2" / method / f"seed{seed}"

    @property
    def table2_own_poses(self) -> bool:
        """Table 2 trains on its own, larger pose split (``table2``) instead of the lab_gen sets."""
        return bool(self.cfg.get("table2"))

    def table2_images(self) -> int:
        """Generated images per Table 2 set."""
        return int(self.cfg["world"][T2_POSES if self.table2_own_poses else "lab_gen"]["n"])

    def down_dir(self, name: str, seed: int) -> Path:
        # a set drawn on Table 2's own poses has its own folder: a work folder from before `table2`
        # must not pass its lab_gen-set models off as Table 2's
        own = self.table2_own_poses and name != "real_lab"
        return self.work / ("downstream_t2" if own else "downstream") / name / f"seed{seed}"

    @property
    def arm_model(self) -> str:
        """The world's arm model (world splits and the reader's poses): the profile's, else the world's."""
        from handsynth.world.config import WorldConfig

        return self.cfg.get("arm_model", WorldConfig.arm_model)

    @property
    def prompt_file(self) -> Path:
        return self.work / "prompts" / "lab_gen_wild.txt"

    # execution
    def sh(self, name: str, cmd: list[str]) -> None:
        """Run one command (its output to logs/<name>.log); raise with the log tail if it fails."""
        log = self.log_dir / f"{name}.log"
        t0 = time.time()
        with open(log, "a") as f:
            f.write(f"$ {' '.join(map(str, cmd))}\n")
            f.flush()
            proc = subprocess.run(
                [str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, env=job_env(), cwd=REPO
            )
        if proc.returncode != 0:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"job {name} failed (exit {proc.returncode}); log {log}:\n{tail}")
        self._record_job(name, time.time() - t0)
        print(f"  done {name} ({time.time() - t0:.0f} s)", flush=True)

    def _record_job(self, name: str, seconds: float) -> None:
        with self._timings_lock:
            jobs = self.timings.setdefault("jobs", {})
            jobs[name] = round(jobs.get(name, 0.0) + seconds, 1)
            self.jobs_done += 1
            self._save_timings()

    def _save_timings(self) -> None:
        """Write timings.json atomically (job threads share it, hence the lock)."""
        with self._timings_lock:
            tmp = self.timings_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.timings, indent=2))
            tmp.replace(self.timings_path)

    def parallel(self, jobs: list[tuple[str, list[str]]]) -> None:
        if not jobs:
            return
        n = max(1, int(self.cfg.get("jobs", 1)))
        with ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(self.sh, name, cmd) for name, cmd in jobs]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]

    def self_job(self, job: str, *args: str) -> list[str]:
        """A job this script runs in a child process (tool training, evaluation)."""
        return [
            sys.executable,
            __file__,
            "--profile",
            *self.cfg["profile"].replace("+", " --override ").split(),
            *(["--suite", self.cfg["suite"]] if self.cfg.get("suite") else []),
            "--work",
            str(self.work),
            "--job",
            job,
            *args,
        ]

    def stage(self, name: str, fn) -> None:
        t0, before = time.time(), self.jobs_done
        print(f"[micro] stage {name}", flush=True)
        fn()
        stages = self.timings.setdefault("stages", {})
        # Wall time spent doing work, summed over invocations (a resumed run adds what it did);
        # a stage that only skipped keeps what it had.
        dt = round(time.time() - t0, 1)
        if self.jobs_done > before:
            stages[name] = round(stages.get(name, 0.0) + dt, 1)
        elif name not in stages:
            stages[name] = dt
        self._save_timings()

    # -- stages ------------------------------------------------------------------------------------------
    def world_cmd(self, split: str, spec: dict) -> list:
        """``handsynth world render`` for one split (``poses``: another split whose records it re-renders)."""
        n = spec.get("n") or self.cfg["world"][spec["poses"]]["n"]
        cmd = [
            *handsynth_cmd(),
            "world",
            "render",
            "--domain",
            spec["domain"],
            "--n",
            n,
            "--out",
            self.data(split),
            "--size",
            self.cfg["size"],
            "--seed",
            spec["seed"],
            "--maps",
            self.cfg.get("world_maps", "mesh"),
        ]
        if self.cfg.get("caption_style"):
            cmd += ["--caption-style", self.cfg["caption_style"]]
        cmd += ["--arm-model", self.arm_model]
        if spec.get("hand_fraction"):
            cmd += ["--hand-fraction", ",".join(str(x) for x in spec["hand_fraction"])]
        if spec.get("backgrounds"):  # the world's fixed background set (a world a small base can learn)
            cmd += ["--backgrounds", spec["backgrounds"]]
        if spec.get("object_prob") is not None:
            cmd += ["--object-prob", spec["object_prob"]]
        if spec.get("poses"):
            cmd += ["--poses", self.data(spec["poses"]) / "metadata.jsonl"]
        return cmd

    def stage_world(self) -> None:
        world, empty = self.cfg["world"], self.cfg.get("empty") or {}
        first = [k for k, v in world.items() if not v.get("poses")]
        second = [k for k, v in world.items() if v.get("poses")]  # re-render the first wave's poses
        jobs = [(f"world_{k}", self.world_cmd(k, world[k])) for k in first if not self._done(k)]
        jobs += [
            (f"empty_{k}", self.self_job("empty", "--split", k))
            for k in empty
            if not self._done(f"empty_{k}")
        ]
        self.parallel(jobs)
        self._mark_done([*first, *(f"empty_{k}" for k in empty)])
        self.parallel([(f"world_{k}", self.world_cmd(k, world[k])) for k in second if not self._done(k)])
        self._mark_done(second)

    def _done(self, split: str) -> bool:
        return (self.data(split) / ".done").exists()

    def _mark_done(self, splits: list[str]) -> None:
        for split in splits:
            if (self.data(split) / "metadata.jsonl").exists():
                (self.data(split) / ".done").touch()

    def stage_base_and_tools(self) -> None:
        """The micro base and the evaluation tools are independent: they share the parallel slots."""
        from handsynth.diffusion.base import missing_parts

        if self.reuse_from is not None:
            self.reuse_artifacts(self.reuse_from)
        if self.pretrained_source is not None:
            self.reuse_artifacts(self.pretrained_source, kind="pretrained")
        jobs = [("base_pretrain", self.self_job("base"))] if missing_parts(self.base) else []
        self.stage_tools(jobs)
        self.stamp_recipes()

    # -- reuse of a finished base / tool from another work folder (e.g. a suite on the default world) -----
    def artifacts(self) -> dict[str, Path]:
        tools = ("features", "detector", "recon", "reader")
        return {"base": self.base, **{name: self.tool(name) for name in tools}}

    def artifact_finished(self, name: str) -> bool:
        from handsynth.diffusion.base import missing_parts

        folder = self.artifacts()[name]
        if name == "base":
            return folder.exists() and not missing_parts(folder)
        # a recon run is finished when marked; an embedded copy holds its last checkpoint's weights at the top
        # (a wheel keeps no dot-files)
        return (folder / "model.safetensors").exists() or (name == "recon" and (folder / ".done").exists())

    def recipe(self, name: str) -> dict | None:
        """What a base/tool artifact is made from: its budget and the fingerprints of the splits it reads
        (None when a split is missing, e.g. in the HandBooster suite's world)."""
        tools = self.cfg["tools"]
        optional = ["empty_wild_train"] if name in ("base", "detector") else []  # no-hand photos, when any
        if name == "base":
            from dataclasses import asdict

            from handsynth.micro.base import MicroBaseConfig

            # the resolved config: a field the profile leaves at its code default still counts
            resolved = asdict(MicroBaseConfig(resolution=self.cfg["size"], **self.cfg["base"]))
            splits, budget = ["wild_train"], {"base": resolved}
        elif name == "detector":
            t = tools["detector"]
            splits, budget = list(t.get("data", ["wild_train", "lab_train"])), {"tool": t}
        elif name == "features":
            splits, budget = ["wild_train", "lab_train"], {"tool": tools["features"]}
        elif name == "reader":  # reads no split: it learns from the world's pose samplers
            splits, budget = (
                [],
                {"tool": tools["reader"], "arm_model": self.arm_model},
            )
        else:
            t = tools["recon"]
            splits, budget = list(t.get("data", ["wild_train"])), {"tool": t, "recon": self.cfg["recon"]}
        if not all((self.data(s) / "metadata.jsonl").exists() for s in splits):
            return None
        splits += [s for s in optional if (self.data(s) / "metadata.jsonl").exists()]
        return {
            "size": self.cfg["size"],
            **budget,
            "data": {s: self.fingerprint(s) for s in splits},
        }

    def fingerprint(self, split: str) -> str:
        """``split_fingerprint`` of a finished split, computed once per invocation."""
        if split not in self._fingerprints:
            self._fingerprints[split] = split_fingerprint(self.data(split))
        return self._fingerprints[split]

    @property
    def pretrained_source(self) -> Path | None:
        """Where ``pretrained`` (config) takes the base and tools from: ``embedded`` = the package's default
        model (``handsynth/assets/default``), or a folder laid out like a work folder; None = train them.
        They stand in for SD-1.5 and the paper's off-the-shelf evaluation models, which AttentionHand
        does not train either; ``reuse_artifacts`` still takes each only when its recipe equals this run's."""
        spec = self.cfg.get("pretrained")
        if not spec:
            return None
        if spec == "embedded":
            from handsynth.micro.assets import ASSETS, DEFAULT_NAME

            return ASSETS / DEFAULT_NAME
        return Path(spec)

    def reuse_artifacts(self, source: Path, kind: str = "reused") -> None:
        """Copy each unfinished base/tool from ``source`` when its recorded recipe equals this run's
        (``kind``: the timings key that names where it came from, ``reused`` or ``pretrained``)."""
        src = Runner(self.cfg, source, create=False)
        for name, folder in self.artifacts().items():
            if self.artifact_finished(name):
                continue
            theirs = src.artifacts()[name] / RECIPE_FILE
            mine = self.recipe(name) if theirs.exists() and src.artifact_finished(name) else None
            if mine is None:
                print(f"[micro] {name}: not reused ({theirs} is missing or unfinished)", flush=True)
                continue
            recorded = json.loads(theirs.read_text())["recipe"]
            if recorded != json.loads(json.dumps(mine)):
                differ = sorted(k for k in set(recorded) | set(mine) if recorded.get(k) != mine.get(k))
                print(f"[micro] {name}: not reused (its recipe differs in {', '.join(differ)})", flush=True)
                continue
            shutil.copytree(src.artifacts()[name], folder, dirs_exist_ok=True)
            self.timings.setdefault(kind, {})[name] = str(src.artifacts()[name])  # its time is not ours
            self._save_timings()
            print(f"[micro] {name}: {kind} from {src.artifacts()[name]} (same budget, same data)", flush=True)

    def where(self) -> str:
        """The work folder as a reader of a record finds it (:func:`shown_path`)."""
        return shown_path(self.work)

    def provenance(self, name: str, depth: int = 0) -> str:
        """Where a base/tool came from: trained by this run, or taken (pretrained/reused) from another
        folder, whose own record is carried over (an embedded model's ``info.json``, a work folder's
        timings), so a model installed from a run that took it pretrained still names its training."""
        for kind in ("pretrained", "reused"):
            source = self.timings.get(kind, {}).get(name)
            if not source:
                continue
            root = Path(source).parent if name == "base" else Path(source).parent.parent
            info = root / "info.json"
            if info.exists():
                recorded = json.loads(info.read_text()).get("provenance", {}).get(name)
                if recorded:
                    return recorded
            if depth < 4 and (root / "timings.json").exists():
                return Runner(self.cfg, root, create=False).provenance(name, depth + 1)
            return f"taken {kind} from {shown_path(root)} (same recipe)"
        return f"trained by the {self.cfg['profile']} run in {self.where()} (recipe in {RECIPE_FILE})"

    def stamp_recipes(self) -> None:
        """Record each finished base/tool's recipe (once), so another run can reuse it."""
        for name, folder in self.artifacts().items():
            stamp = folder / RECIPE_FILE
            if stamp.exists() or not self.artifact_finished(name):
                continue
            recipe = self.recipe(name)
            if recipe is not None:
                stamp.write_text(json.dumps({"recipe": recipe}, indent=1))

    def stage_tools(self, jobs: list | None = None) -> None:
        jobs = list(jobs or [])
        for name in ("features", "detector", "reader"):
            if not self.artifact_finished(name):
                jobs.append((f"tool_{name}", self.self_job(name)))
        if not self.artifact_finished("recon"):
            t = self.cfg["tools"]["recon"]
            data = [self.data(s) for s in t.get("data", ["wild_train"])]
            jobs.append(
                ("tool_recon", self.recon_train_cmd(data, self.tool("recon"), t["steps"], t["batch_size"], 0))
            )
        self.parallel(jobs)
        if (self.tool("recon") / "checkpoints").exists():
            (self.tool("recon") / ".done").touch()
            # `recon train` keeps no wall time; the report's from-scratch cost reads it here
            record, seconds = (
                self.tool("recon") / "training_seconds.json",
                self.timings.get("jobs", {}).get("tool_recon"),
            )
            if seconds is not None and not record.exists():
                record.write_text(json.dumps({"seconds": seconds}))

    def recon_train_cmd(
        self,
        data: list,
        out: Path,
        steps: int,
        batch: int,
        seed: int,
        init: Path | None = None,
        lr: float | None = None,
    ) -> list[str]:
        """``handsynth recon train`` with the shared recon settings (``init``: fine-tune that run)."""
        r = self.cfg["recon"]
        cmd = [
            *handsynth_cmd(),
            "recon",
            "train",
            "--out",
            out,
            "--steps",
            steps,
            "--batch-size",
            batch,
            "--width",
            r["width"],
            "--hidden",
            r["hidden"],
            "--img-size",
            r["img_size"],
            "--lr",
            r["lr"] if lr is None else lr,
            "--warmup",
            r["warmup"],
            "--num-workers",
            0,
            "--seed",
            seed,
            "--save-every",
            steps,
            "--log-every",
            max(1, steps // 20),
            "--keep-last",
            1,
        ]
        for d in data:
            cmd += ["--in", str(d)]
        if init is not None:
            cmd += ["--init", str(init)]
        return cmd

    @property
    def gen_poses(self) -> Path:
        return self.gen_input("lab_gen")

    @property
    def gen_poses_local(self) -> Path:
        """The held-out poses as their local crops (Table 4's local-only model generates from these)."""
        return self.gen_input("lab_gen", local=True)

    def gen_input(self, split: str, local: bool = False) -> Path:
        """The generators' input records for a held-out pose split (``local``: as their local crops)."""
        return self.data(split) / ("gen_poses_local.jsonl" if local else "gen_poses.jsonl")

    def prompt_file_of(self, split: str) -> Path:
        return self.prompt_file if split == "lab_gen" else self.work / "prompts" / f"{split}_wild.txt"

    def tas_precondition(self) -> dict:
        """The TAS precondition measured on the base (``eval/tas_probe.json``): ratio, threshold, passed."""
        probe = _read_json(self.work / "eval" / "tas_probe.json")
        ratio = probe.get("attention_in_hand_ratio")
        need = float(self.cfg.get("gates", {}).get("tas_attention_ratio", 2.0))
        return {"ratio": ratio, "threshold": need, "passed": None if ratio is None else ratio >= need}

    def skipped(self, method: str) -> str | None:
        """Why ``method`` is not run in this profile (None: it runs)."""
        spec = self.cfg["methods"][method]
        if spec.get("unavailable"):
            return spec["unavailable"]
        if spec.get("requires") == "tas_precondition":
            pre = self.tas_precondition()
            if pre["passed"] is False:
                return (
                    f"TAS precondition failed: hand-token attention inside the hand box is {pre['ratio']:.2f}x "
                    f"the box's area share (needs >= {pre['threshold']:.0f}x)"
                )
        return None

    def generated_sets(self) -> list[str]:
        return [m for m in self.cfg["methods"] if self.skipped(m) is None]

    def stage_prompts(self) -> None:
        from handsynth.data import read_dataset, write_metadata
        from handsynth.micro.data import local_as_global
        from handsynth.micro.prompts import wild_prompts

        for split in ["lab_gen"] + ([T2_POSES] if self.table2_own_poses else []):
            folder = self.data(split)
            if not self.gen_input(split).exists():
                # The generators' input: the held-out lab poses with their condition maps, without the
                # real photo and its local crop (a generated record must not point at the real lab crop).
                poses = read_dataset(folder)
                for s in poses:
                    if s.local is not None:
                        s.local.file_name = None
                write_metadata(self.gen_input(split), poses)
            if not self.gen_input(split, local=True).exists():
                write_metadata(self.gen_input(split, local=True), local_as_global(read_dataset(folder)))
            prompt_file = self.prompt_file_of(split)
            if not prompt_file.exists():
                prompts = wild_prompts(read_dataset(folder), read_dataset(self.data("wild_train")), seed=0)
                prompt_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = prompt_file.with_suffix(".tmp")
                tmp.write_text("\n".join(prompts) + "\n")
                tmp.replace(prompt_file)
        self.suite_prompts()

    def cot_records(self, split: str) -> Path:
        """The CoT copy of a split's records (``prompt``: the CoT prompt of its verbose caption)."""
        return self.data(split) / "cot.jsonl"

    def suite_prompt_file(self, style: str) -> Path:
        return self.work / "prompts" / f"{self.cfg['prompts_from']}_{style}.txt"

    def prompt_file_for(self, method: str) -> Path:
        """A row's generation prompts: ``generate.prompts`` cot | verbose (suites), else the default file."""
        style = self.cfg["methods"][method]["generate"].get("prompts")
        return self.suite_prompt_file(style) if style else self.prompt_file

    def suite_prompts(self) -> None:
        """Suites with ``cot``: CoT copies of those splits; with ``prompts_from``: the cot/verbose files."""
        from handsynth.data import read_dataset

        jobs, splits = [], [s for s in self.cfg.get("cot") or [] if not (self.data(s) / ".cot_done").exists()]
        for split in splits:
            out = self.cot_records(split)
            out.write_text((self.data(split) / "metadata.jsonl").read_text())
            cmd = [*handsynth_cmd(), "caption", "--cot", "--backend", "record", "--semantics", "rule"]
            jobs.append((f"cot_{split}", [*cmd, "--overwrite", "--in", out]))
        self.parallel(jobs)
        for split in splits:
            (self.data(split) / ".cot_done").touch()
        src = self.cfg.get("prompts_from")
        if not src:
            return
        texts = {
            "cot": [s.prompt for s in read_dataset(self.cot_records(src))],
            "verbose": [s.extra["caption"] for s in read_dataset(self.data(src))],
        }
        for style, lines in texts.items():
            path = self.suite_prompt_file(style)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("\n".join(" ".join(t.split()) for t in lines) + "\n")

    def trainer(self, method: str) -> str:
        """The ``handsynth train --method`` of a row (default attentionhand)."""
        return self.cfg["methods"][method].get("trainer", "attentionhand")

    def weights_config(self, method: str, seed: int) -> Path:
        """The file a finished guidance run leaves (the stage skips the run when it exists)."""
        folder = "uni_controlnet" if self.trainer(method) == "uni-controlnet" else "controlnet"
        return self.run_dir(method, seed) / folder / "config.json"

    def guidance_config(self, method: str, seed: int) -> Path:
        g = self.cfg["guidance"]
        if self.trainer(method) == "uni-controlnet":
            return self._write_guidance_config(method, seed, self.uni_controlnet_config(seed))
        if self.trainer(method) == "sesahand":
            return self._write_guidance_config(method, seed, self.sesahand_config(seed))
        cfg = {
            "method": "attentionhand",
            "model": {
                "base_model": str(self.base),
                "resolution": self.cfg["size"],
                "conditioning_embedding_out_channels": [16, 32, 32],
            },
            "tas": {"enabled": True, "iterations": g["tas_iterations"], "resolution": g["tas_resolution"]},
            "train": self._train_section(seed),
            "validation": {"num_samples": 1, "num_inference_steps": 4},
            # v2: ControlNet-style caption dropout for the guidance modules (issue 11: 50 %).
            "data": {"empty_prompt_prob": g.get("empty_prompt_prob", 0.0)},
        }
        return self._write_guidance_config(method, seed, cfg)

    def _train_section(self, seed: int) -> dict:
        """The training budget every guidance row shares."""
        g = self.cfg["guidance"]
        return {
            "max_steps": g["steps"],
            "batch_size": g["batch_size"],
            "learning_rate": g["learning_rate"],
            "checkpoint_every": max(1, g["steps"] // 4),
            "checkpoint_every_minutes": 5,  # a restarted machine costs at most 5 minutes of a training
            "checkpoints_total_limit": 1,
            "validate_every": 0,
            "log_every": max(1, g["steps"] // 50),
            "seed": seed,
        }

    def uni_controlnet_config(self, seed: int) -> dict:
        """Uni-ControlNet's local adapter under the same guidance budget as the ControlNet rows."""
        return {
            "method": "uni-controlnet",
            "model": {
                "base_model": str(self.base),
                "resolution": self.cfg["size"],
                "maps": ["mesh"],  # the micro world renders the mesh map only
                "stem_channels": [16, 32, 32],
            },
            "train": self._train_section(seed),
            "validation": {"num_samples": 1, "num_inference_steps": 4},
        }

    def sesahand_config(self, seed: int) -> dict:
        """SesaHand (fusion + HSA) under the same guidance budget and caption dropout as the ControlNet rows."""
        g = self.cfg["guidance"]
        return {
            "method": "sesahand",
            "model": {
                "base_model": str(self.base),
                "resolution": self.cfg["size"],
                "conditioning_embedding_out_channels": [16, 32, 32],
            },
            "fusion": {"enabled": True, "mode": "attention", "head_dim": 16},
            "hsa": {"enabled": True, "bias": 1.0},
            # off unless a row turns it on (sesahand_hsa_tas): then AttentionHand's TAS budget
            "tas": {"enabled": False, "iterations": g["tas_iterations"], "resolution": g["tas_resolution"]},
            "data": {"prompt_field": "prompt", "empty_prompt_prob": g.get("empty_prompt_prob", 0.0)},
            "train": self._train_section(seed),
            "validation": {"num_samples": 1, "num_inference_steps": 4},
        }

    def train_data(self, method: str) -> Path:
        """SesaHand rows train on the CoT copy (``prompt``: CoT; ``caption``: verbose); others on the split."""
        if self.trainer(method) == "sesahand" and "wild_train" in (self.cfg.get("cot") or []):
            return self.cot_records("wild_train")
        return self.data("wild_train")

    def _write_guidance_config(self, method: str, seed: int, cfg: dict) -> Path:
        for key, value in (self.cfg["methods"][method]["train"] or {}).items():
            node = cfg
            *parents, last = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[last] = value
        return self.write_config(f"{method}_seed{seed}", cfg)

    def write_config(self, name: str, cfg: dict) -> Path:
        """A training config written under the run's ``configs/`` (the trainers read it from there)."""
        path = self.work / "configs" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def guidance_recipe(self, method: str, seed: int) -> dict | None:
        """What a finished guidance run is made from: its trainer, the config the runner wrote for it (paths
        into the work folder and the base's path left out: the base counts by its recipe), the base's
        recipe and the training split's fingerprint with the condition files the module reads."""
        path = self.work / "configs" / f"{method}_seed{seed}.yaml"
        stamp = self.base / RECIPE_FILE
        if not path.exists() or not stamp.exists():
            return None
        cfg = yaml.safe_load(path.read_text())
        cfg.get("model", {}).pop("base_model", None)
        return {
            "trainer": self.trainer(method),
            "config": _without_prefix(cfg, str(self.work)),
            "base": json.loads(stamp.read_text())["recipe"],
            "data": training_fingerprint(self.train_data(method)),
        }

    def reuse_guidance(self, source: Path) -> None:
        """Copy each unfinished guidance run that ``source`` finished from the same recipe (a suite's
        baseline rows trained exactly as the default suite trains them)."""
        src = Runner(self.cfg, source, create=False)
        for seed in self.cfg["seeds"]:
            for method, spec in self.cfg["methods"].items():
                if (
                    spec.get("train") is None
                    or self.skipped(method)
                    or self.weights_config(method, seed).exists()
                ):
                    continue
                if not src.weights_config(method, seed).exists():
                    continue
                self.guidance_config(method, seed)  # writes this run's config, the recipe's first part
                mine, theirs = self.guidance_recipe(method, seed), src.guidance_recipe(method, seed)
                name = f"train_{method}_seed{seed}"
                if theirs is None:
                    print(
                        f"[micro] {name}: not reused (no runner-written config or base stamp there)",
                        flush=True,
                    )
                    continue
                if mine is None or json.loads(json.dumps(mine)) != json.loads(json.dumps(theirs)):
                    differ = sorted(k for k in mine or {} if theirs.get(k) != mine.get(k))
                    print(
                        f"[micro] {name}: not reused (recipe differs in {', '.join(differ) or 'all'})",
                        flush=True,
                    )
                    continue
                shutil.copytree(src.run_dir(method, seed), self.run_dir(method, seed), dirs_exist_ok=True)
                self.timings.setdefault("reused", {})[name] = str(src.run_dir(method, seed))
                self._save_timings()
                print(f"[micro] {name}: reused from {src.run_dir(method, seed)} (same recipe)", flush=True)

    def stage_guidance(self) -> None:
        if self.reuse_from is not None:
            self.reuse_guidance(self.reuse_from)
        jobs = []
        for seed in self.cfg["seeds"]:
            for method, spec in self.cfg["methods"].items():
                if spec.get("train") is None or self.skipped(method):
                    continue
                run = self.run_dir(method, seed)
                if self.weights_config(method, seed).exists():
                    continue
                cfg = self.guidance_config(method, seed)
                jobs.append(
                    (
                        f"train_{method}_seed{seed}",
                        [
                            *handsynth_cmd(),
                            "train",
                            "--method",
                            self.trainer(method),
                            "--config",
                            cfg,
                            "--in",
                            self.train_data(method),
                            "--out",
                            run,
                        ],
                    )
                )
        self.parallel(jobs)

    def generate_cmd(self, method: str, seed: int, split: str = "lab_gen") -> list[str]:
        """``handsynth generate`` for one row and seed on the poses of ``split`` (lab_gen, or Table 2's)."""
        spec = self.cfg["methods"][method]["generate"]
        g = self.cfg["generate"]
        if split != "lab_gen" and spec.get("prompts"):
            raise SystemExit(
                f"row {method!r} generates from the suite's {spec['prompts']} prompts, which exist for "
                f"{self.cfg.get('prompts_from')} only: set table2: null for this suite"
            )
        poses = self.gen_input(split, local=spec.get("input") == "local")
        out = self.gen_dir(method, seed) if split == "lab_gen" else self.t2_gen_dir(method, seed)
        cmd = [
            *handsynth_cmd(),
            "generate",
            "--method",
            spec["method"],
            "--base-model",
            self.base,
            "--in",
            poses,
            "--out",
            out,
            "--prompts",
            "file",
            "--prompt-file",
            self.prompt_file_for(method) if split == "lab_gen" else self.prompt_file_of(split),
            "--steps",
            g["steps"],
            "--guidance",
            g["guidance"],
            "--seed",
            seed,
            "--batch-size",
            g["batch_size"],
            "--sheet-rows",
            8,
        ]
        run = self.run_dir(self.cfg["methods"][method].get("checkpoint_from") or method, seed)
        if spec["method"] != "sd" and g.get("conditioning_scale", 1.0) != 1.0:
            # the same scale for every guided method (config.yaml says why the micro world needs one)
            cmd += ["--conditioning-scale", g["conditioning_scale"]]
        if spec["method"] == "controlnet":
            cmd += ["--checkpoint", run / "controlnet"]
        elif spec["method"] == "uni-controlnet":
            cmd += ["--checkpoint", run]
        elif spec["method"] == "attentionhand":
            cmd += ["--checkpoint", run, "--mode", spec.get("mode", "global")]
            if spec.get("tas"):
                cmd += ["--tas"]
        elif spec["method"] == "sesahand":
            cmd += ["--checkpoint", run]
            if spec.get("hsa") is False:
                cmd += ["--no-hsa"]
        return cmd

    def stage_tas_probe(self) -> None:
        needed = any(m.get("requires") == "tas_precondition" for m in self.cfg["methods"].values())
        if self.cfg.get("suite") and not needed:
            return  # a suite with no TAS row does not measure the precondition (the default suite does)
        if not (self.work / "eval" / "tas_probe.json").exists():
            self.sh("tas_probe", self.self_job("tas_probe"))

    def table2_generated(self) -> list[str]:
        """The rows that draw Table 2's own poses: its generated sets and the shuffled control's source."""
        sets = self.downstream_sets()
        source = self.cfg.get("controls", {}).get("shuffle")
        return [m for m in self.generated_sets() if m in sets or (m == source and SHUFFLED in sets)]

    def stage_generate(self) -> None:
        jobs = []
        n = self.cfg["world"]["lab_gen"]["n"]
        for seed in self.cfg["seeds"]:
            for method in self.generated_sets():
                out = self.gen_dir(method, seed)
                if _count_records(out) >= n:
                    continue
                jobs.append((f"generate_{method}_seed{seed}", self.generate_cmd(method, seed)))
        if self.table2_own_poses:
            for seed in self.cfg["seeds"]:
                for method in self.table2_generated():
                    if _count_records(self.t2_gen_dir(method, seed)) < self.table2_images():
                        cmd = self.generate_cmd(method, seed, split=T2_POSES)
                        jobs.append((f"generate_t2_{method}_seed{seed}", cmd))
        self.parallel(jobs)

    def stage_metrics(self) -> None:
        jobs = []
        for seed in self.cfg["seeds"]:
            done = self.work / "eval" / f"seed{seed}" / "metrics.json"
            if not done.exists() or not set(self.generated_sets()) <= set(
                json.loads(done.read_text())["rows"]
            ):
                jobs.append((f"metrics_seed{seed}", self.self_job("metrics", "--seed", str(seed))))
        self.parallel(jobs)

    def stage_controls(self) -> None:
        """Blank images with the held-out labels (Table 1's trivial row) and, per seed, the shuffled-label
        copy of the ``controls.shuffle`` method's generated set (Table 2's control)."""
        from handsynth.micro.controls import write_blank, write_shuffled

        n = self.cfg["world"]["lab_gen"]["n"]
        source = self.cfg.get("controls", {}).get("shuffle", "attentionhand")
        for seed in self.cfg["seeds"]:
            if _count_records(self.gen_dir("blank", seed)) < n:
                write_blank(self.gen_poses, self.gen_dir("blank", seed), self.cfg["size"])
            src = self.gen_dir(source, seed)
            if _count_records(src) >= n and _count_records(self.gen_dir(SHUFFLED, seed)) < n:
                write_shuffled(src, self.gen_dir(SHUFFLED, seed), seed)
            src, out, n2 = (
                self.t2_gen_dir(source, seed),
                self.t2_gen_dir(SHUFFLED, seed),
                self.table2_images(),
            )
            if self.table2_own_poses and _count_records(src) >= n2 and _count_records(out) < n2:
                write_shuffled(src, out, seed)
            self.jobs_done += 1

    def downstream_sets(self) -> list[str]:
        """Real lab, the generated sets, the shuffled control and the oracle; ``downstream.sets: claims``
        keeps the generated sets the suite's Table 2 claims compare (the others would only be described)."""
        sets = ["real_lab", *self.generated_sets()]
        if self.cfg.get("controls", {}).get("shuffle") in sets:
            sets.append(SHUFFLED)
        if "wild_gen" in self.cfg["world"]:
            sets.append("oracle")
        if self.cfg["downstream"].get("sets", "all") == "claims":
            named = table2_sets(self.cfg)
            sets = [s for s in sets if s in ("real_lab", "oracle") or s in named]
        return sets

    def downstream_data(self, name: str, seed: int) -> str:
        """The generated (or oracle) set added to real lab for downstream set ``name`` (Table 2's own
        poses and their real wild photos when the profile gives it some)."""
        if self.table2_own_poses:
            return str(self.data(T2_ORACLE) if name == "oracle" else self.t2_gen_dir(name, seed))
        return str(self.data("wild_gen") if name == "oracle" else self.gen_dir(name, seed))

    @property
    def finetune_downstream(self) -> bool:
        """``downstream.protocol: finetune``: recon pretrained on real lab, fine-tuned on each set
        (``handsynth recon train --init``); default ``mix``: trained from scratch on real lab + the set."""
        return self.cfg["downstream"].get("protocol", "mix") == "finetune"

    def stage_downstream(self) -> None:
        if self.finetune_downstream:  # the pretrained models first: every fine-tune starts from one
            self.parallel(self._downstream_jobs(["real_lab"]))
            self.parallel(self._downstream_jobs([n for n in self.downstream_sets() if n != "real_lab"]))
        else:
            self.parallel(self._downstream_jobs(self.downstream_sets()))

    def _downstream_jobs(self, names: list[str]) -> list[tuple[str, list[str]]]:
        """Train (or fine-tune) then evaluate on real wild, one chained job per set and seed."""
        d = self.cfg["downstream"]
        jobs = []
        for seed in self.cfg["seeds"]:
            for name in names:
                out = self.down_dir(name, seed)
                if (out / "eval" / "metrics.json").exists():
                    continue
                if name == "real_lab":
                    train = self.recon_train_cmd(
                        [self.data("lab_train")], out / "run", d["steps"], d["batch_size"], seed
                    )
                elif self.finetune_downstream:
                    train = self.recon_train_cmd(
                        [self.downstream_data(name, seed)],
                        out / "run",
                        d["finetune_steps"],
                        d["batch_size"],
                        seed,
                        init=self.down_dir("real_lab", seed) / "run",
                        lr=d.get("finetune_lr"),
                    )
                else:
                    data = [self.data("lab_train"), f"{self.downstream_data(name, seed)}:{d['synth_ratio']}"]
                    train = self.recon_train_cmd(data, out / "run", d["steps"], d["batch_size"], seed)
                evaluate = [
                    *handsynth_cmd(),
                    "recon",
                    "eval",
                    "--checkpoint",
                    out / "run",
                    "--in",
                    self.data("wild_test"),
                    "--out",
                    out / "eval",
                ]
                chain = json.dumps([[str(c) for c in train], [str(c) for c in evaluate]])
                jobs.append((f"downstream_{name}_seed{seed}", [sys.executable, "-c", _CHAIN, chain]))
        return jobs

    def stage_yardsticks(self) -> None:
        if not (self.work / "eval" / "yardsticks.json").exists():
            self.sh("yardsticks", self.self_job("yardsticks"))

    def stage_report(self) -> Path:
        from report import write_report  # benchmarks/micro/report.py

        return write_report(self)

    def install_default(self) -> None:
        from handsynth.micro.assets import install_default

        method = self.cfg["default_model"]
        if not method:
            raise SystemExit(f"suite {self.cfg.get('suite')!r} installs no default model")
        run = self.run_dir(method, self.cfg["seeds"][0])
        info = {
            "profile": self.cfg["profile"],
            "command": f"python benchmarks/micro/run.py --profile {self.cfg['profile']} --install-default",
            "seed": self.cfg["seeds"][0],
            "method": method,
            "base": json.loads((self.base / "handsynth_micro.json").read_text()),
            "guidance": yaml.safe_load((run / "handsynth_config.yaml").read_text()),
            "size": self.cfg["size"],
            "generate": self.cfg["generate"],
        }
        tools = {
            k: self.tool(k) for k in ("features", "detector", "reader", "recon") if self.artifact_finished(k)
        }
        info["provenance"] = {
            **{name: self.provenance(name) for name in ("base", *tools)},
            method: f"seed {info['seed']} of the {self.cfg['profile']} run in {self.where()}, "
            f"installed {datetime.date.today().isoformat()}",
        }
        model = install_default(self.base, run, info, tools)
        print(f"[micro] default model installed in {model.root}")

    def run_all(self) -> Path:
        self.stage("world", self.stage_world)
        self.stage("base + tools", self.stage_base_and_tools)
        self.stage("prompts", self.stage_prompts)
        self.stage("tas probe", self.stage_tas_probe)  # before guidance: the TAS sweep needs its precondition
        self.stage("guidance", self.stage_guidance)
        self.stage("generate", self.stage_generate)
        self.stage("controls", self.stage_controls)
        self.stage("metrics", self.stage_metrics)
        self.stage("yardsticks + gates", self.stage_yardsticks)
        self.stage("downstream", self.stage_downstream)
        report = self.stage_report()
        return report


_CHAIN = (
    "import json, subprocess, sys\n"
    "for cmd in json.loads(sys.argv[1]):\n"
    "    print('$', ' '.join(cmd), flush=True)\n"
    "    rc = subprocess.call(cmd)\n"
    "    if rc: sys.exit(rc)\n"
)


RECIPE_FILE = "handsynth_recipe.json"
# Record keys no base/tool job reads: a suite's extra condition maps and captions must not block reuse.
_NOT_READ = {"caption", "conditions", "local"}


def table2_sets(cfg: dict) -> set[str]:
    """The sets the suite's Table 2 claims compare (``report.claims_of``)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from report import claims_of

    return {m for claim in claims_of(cfg) if claim[5] == "Table 2" for m in claim[2:4]}


def _records_file(path: Path) -> tuple[Path, Path]:
    """(records file, folder its file names are relative to) of a dataset folder or a ``.jsonl`` copy
    beside it (the SesaHand suite's ``cot.jsonl``)."""
    path = Path(path)
    return (path, path.parent) if path.suffix == ".jsonl" else (path / "metadata.jsonl", path)


def split_fingerprint(folder: Path) -> str:
    """sha256 over a record folder's photos and the record fields the base and tools read."""
    records, folder = _records_file(folder)
    h = hashlib.sha256()
    for line in records.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        kept = {k: v for k, v in rec.items() if k not in _NOT_READ and not k.endswith("_file_name")}
        h.update(json.dumps(_rounded(kept), sort_keys=True).encode())
        if rec.get("file_name"):
            h.update((folder / rec["file_name"]).read_bytes())
    return h.hexdigest()


def _rounded(value):
    """``value`` with every float at 10 significant digits: the same world drawn by code that orders its
    float operations differently writes labels that differ in the 16th digit (photos byte-identical)."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.10g}")
    return value


def training_fingerprint(folder: Path) -> str:
    """``split_fingerprint`` plus what a guidance module reads besides: the global and local mesh
    condition files and the local crops (photo and box)."""
    h = hashlib.sha256(split_fingerprint(folder).encode())
    records, folder = _records_file(folder)
    for line in records.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        local = rec.get("local") or {}
        h.update(json.dumps(_rounded(local.get("box"))).encode())
        for rel in (
            (rec.get("conditions") or {}).get("mesh"),
            local.get("file_name"),
            (local.get("conditions") or {}).get("mesh"),
        ):
            if rel:
                h.update((folder / rel).read_bytes())
    return h.hexdigest()


def _without_prefix(value, prefix: str):
    """``value`` with every string that starts with ``prefix`` (a work folder) rewritten relative to it."""
    if isinstance(value, dict):
        return {k: _without_prefix(v, prefix) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_prefix(v, prefix) for v in value]
    if isinstance(value, str) and value.startswith(prefix):
        return "<work>" + value[len(prefix) :]
    return value


def _read_json(p: Path) -> dict:
    return json.loads(p.read_text()) if p.exists() else {}


def _count_records(folder: Path) -> int:
    p = folder / "metadata.jsonl"
    if not p.exists():
        return 0
    return sum(1 for line in p.read_text().splitlines() if line.strip())


# -- child jobs ----------------------------------------------------------------------------------------------
def job_base(r: Runner) -> None:
    from handsynth.micro.base import MicroBaseConfig, pretrain_base

    cfg = MicroBaseConfig(resolution=r.cfg["size"], **r.cfg["base"])
    # v2: the base also sees no-hand photos captioned as empty scenes (gate b asks it to tell them apart).
    extra = [r.data("empty_wild_train")] if (r.data("empty_wild_train") / "metadata.jsonl").exists() else []
    pretrain_base(r.data("wild_train"), r.base, cfg, extra_data=extra)


def job_features(r: Runner) -> None:
    from handsynth.micro.data import load_world
    from handsynth.micro.features import train_feature_extractor

    t = r.cfg["tools"]["features"]
    arrays = load_world([r.data("wild_train"), r.data("lab_train")], r.cfg["size"])
    net, stats = train_feature_extractor(
        arrays, steps=t["steps"], batch_size=t["batch_size"], augment=bool(t.get("augment", False))
    )
    net.save(r.tool("features"), {"training": stats, "data": ["wild_train", "lab_train"]})


def job_detector(r: Runner) -> None:
    from handsynth.micro.data import load_world
    from handsynth.micro.detector import train_detector

    t = r.cfg["tools"]["detector"]
    # Both real domains (the held-out poses it scores are framed like the lab's), with zoom / rotation /
    # shift / mirror augmentation; never the held-out poses themselves.
    splits = t.get("data", ["wild_train", "lab_train"])
    arrays = load_world([r.data(s) for s in splits], r.cfg["size"])
    negatives = _empty_images(r, "wild_train")
    det, stats = train_detector(
        arrays,
        steps=t["steps"],
        batch_size=t["batch_size"],
        negatives=negatives,
        augment=t.get("augment", True),
        soften=t.get("soften", 0.0),
    )
    data = splits + (["empty_wild_train"] if negatives is not None else [])
    det.save(r.tool("detector"), {"training": stats, "data": data})


def job_reader(r: Runner) -> None:
    from handsynth.micro.reader import train_reader

    t = r.cfg["tools"]["reader"]
    reader, stats = train_reader(
        n=t["poses"],
        steps=t["steps"],
        noise=t.get("noise", 0.1),
        arm_model=r.arm_model,
    )
    reader.save(r.tool("reader"), {"training": stats})


def _empty_images(r: Runner, split: str):
    """The no-hand photos of ``empty_<split>`` as (N, S, S, 3) uint8, or None when the profile has none."""
    import numpy as np

    from handsynth.micro.yardsticks import load_images

    folder = r.data(f"empty_{split}")
    if not (folder / "metadata.jsonl").exists():
        return None
    return np.stack(load_images(folder))


def job_empty(r: Runner, split: str) -> None:
    from handsynth.micro.empty import render_empty

    spec = r.cfg["empty"][split]
    render_empty(
        spec.get("domain", "wild"),
        spec["n"],
        r.cfg["size"],
        spec["seed"],
        r.data(f"empty_{split}"),
        backgrounds_k=spec.get("backgrounds", 0),
    )


def job_metrics(r: Runner, seed: int) -> None:
    from handsynth.eval.image_eval import ImageTools, evaluate_images
    from handsynth.eval.report import write_image_report
    from handsynth.micro.detector import WorldHandDetector
    from handsynth.micro.features import WorldFeatureExtractor
    from handsynth.micro.yardsticks import scan_detector
    from handsynth.recon import ReconEstimator

    detector = WorldHandDetector.load(r.tool("detector"))
    tools = ImageTools(
        extractor=WorldFeatureExtractor.load(r.tool("features")),
        detector=detector,
        estimator=ReconEstimator.from_checkpoint(str(r.tool("recon")), device="cpu"),
        kid_subset_size=1000,
    )
    # Scored in the domain asked for: real wild photos of the very poses the generators were given (a
    # second rendering, other backgrounds and light) when the profile has them, else real wild test photos.
    reference = r.data("wild_gen_ref") if "wild_gen_ref" in r.cfg["world"] else r.data("wild_test")
    sets = {m: r.gen_dir(m, seed) for m in r.generated_sets()}
    if (r.gen_dir("blank", seed) / "metadata.jsonl").exists():
        sets[TRIVIAL_SET] = r.gen_dir("blank", seed)
    result = evaluate_images(reference, list(sets.values()), tools, names=list(sets), score_real=True)
    out = r.work / "eval" / f"seed{seed}"
    write_image_report(result, out, command=f"benchmarks/micro/run.py --job metrics --seed {seed}")
    metrics = json.loads((out / "metrics.json").read_text())
    # The held-out poses as real photos: the lab photos the labels come from, and (v2) the oracle: real
    # wild photos of the same poses, scored exactly like a generated set.
    real = {"Real lab (same poses)": r.data("lab_gen")}
    if "wild_gen" in r.cfg["world"]:
        real[ORACLE_SET] = r.data("wild_gen")
    extra = evaluate_images(reference, list(real.values()), tools, names=list(real))
    for name, folder in real.items():
        metrics["rows"][name] = extra.rows[name]
        sets[name] = folder
    for name, folder in sets.items():  # PCK@0.1 of the detector against each set's own labels (gate c)
        scan = scan_detector(detector, folder)
        metrics["rows"].setdefault(name, {})["PCK@0.1"] = scan.pck if len(scan.gt) else None
    metrics["reference"] = str(reference)
    if r.cfg.get("extra_metrics"):  # suites: text alignment, FID-H by hand-size tercile
        sys.path.insert(0, str(HERE))
        from suite_metrics import add_suite_metrics  # benchmarks/micro/suite_metrics.py

        for res in (result, extra):
            add_suite_metrics(r, res, tools.extractor, metrics["rows"])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))


def job_yardsticks(r: Runner) -> None:
    """The yardstick requirements and gates (a), (b) measured once per run (``eval/yardsticks.json``)."""
    sys.path.insert(0, str(HERE))
    from gates import measure_yardsticks  # benchmarks/micro/gates.py

    out = measure_yardsticks(r)
    path = r.work / "eval" / "yardsticks.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float))


def job_tas_probe(r: Runner) -> None:
    sys.path.insert(0, str(HERE))
    from tas_probe import main as probe

    out = probe(str(r.base), str(r.data("wild_train")), n=32, resolution=r.cfg["guidance"]["tas_resolution"])
    path = r.work / "eval" / "tas_probe.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))


JOBS = {
    "base": job_base,
    "features": job_features,
    "detector": job_detector,
    "reader": job_reader,
    "tas_probe": job_tas_probe,
    "yardsticks": job_yardsticks,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="full", help="full | quick | tiny (config.yaml)")
    p.add_argument("--quick", action="store_true", help="the same as --profile quick (smoke run)")
    p.add_argument("--config", default=str(CONFIG))
    p.add_argument(
        "--suite",
        default=None,
        help="claims to test: default AttentionHand's; sesahand, handbooster (config.yaml suites)",
    )
    p.add_argument(
        "--override", default=None, help="a second profile merged on top (e.g. --profile gpu --override tiny)"
    )
    p.add_argument("--work", default=None, help="output folder (default outputs/micro/<profile>)")
    p.add_argument(
        "--install-default",
        action="store_true",
        help="embed the base + AttentionHand run as the default model",
    )
    p.add_argument(
        "--only-install-default", action="store_true", help="install from finished stages, run nothing"
    )
    p.add_argument("--jobs", type=int, default=None, help="parallel jobs (default: the profile's)")
    p.add_argument(
        "--reuse-from",
        default=None,
        help="another work folder: copy its finished base and tools when their budget and data equal this run's",
    )
    p.add_argument(
        "--no-pretrained",
        action="store_true",
        help="train the base and the tools even where the profile takes them pretrained (config: pretrained)",
    )
    p.add_argument("--report-only", action="store_true", help="rewrite the report from finished stages")
    p.add_argument("--results", default=None, help="report folder (default benchmarks/results)")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--split", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.profile = "quick"
    cfg = load_profile(args.profile, Path(args.config), args.override, args.suite)
    if args.jobs:
        cfg["jobs"] = args.jobs
    if args.no_pretrained:
        cfg["pretrained"] = None
    folder = cfg["profile"] if not args.suite else f"{args.suite}_{cfg['profile']}"
    work = work_folder(args.work, folder)
    runner_cls, suite_jobs = Runner, {}
    # The HandBooster suite has its own world, generator and stages (benchmarks/micro/handbooster_suite.py).
    if args.suite == "handbooster":
        sys.path.insert(0, str(HERE))
        from handbooster_suite import JOBS as suite_jobs
        from handbooster_suite import make_runner

        runner_cls = make_runner(Runner)
    r = runner_cls(cfg, work)
    r.results = Path(args.results) if args.results else RESULTS
    r.reuse_from = Path(args.reuse_from) if args.reuse_from else None
    if suite_jobs and args.results is None and "tiny" in cfg["profile"]:
        r.results = work / "results"  # tiny numbers never land in benchmarks/results
    if args.job:
        import torch

        torch.set_num_threads(1)
        if args.job == "metrics":
            job_metrics(r, args.seed)
        elif args.job == "empty":
            job_empty(r, args.split)
        elif args.job in suite_jobs:
            suite_jobs[args.job](r, args)
        else:
            JOBS[args.job](r)
        return 0
    sys.path.insert(0, str(HERE))
    if args.only_install_default:
        r.install_default()
        return 0
    if args.report_only:
        print(f"[micro] report: {r.stage_report()}")
        return 0
    t0 = time.time()
    try:
        report = r.run_all()
    finally:  # an invocation that stops on an error still counts the work it did
        r.timings["last_run_wall_s"] = round(time.time() - t0, 1)
        if r.jobs_done:
            r.timings["total_wall_s"] = round(
                r.timings.get("total_wall_s", 0.0) + r.timings["last_run_wall_s"], 1
            )
        r._save_timings()
    if args.install_default:
        r.install_default()
    report = r.stage_report()
    print(f"[micro] finished in {time.time() - t0:.0f} s; report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
