"""``benchmarks/micro/run.py --suite handbooster``: HandBooster's Table 5 (and Tables 1-2 in spirit) in the
hand-object micro world (issue 12 §6; docs/micro.md, docs/handbooster.md).

The default suite's stage / job / resume machinery (``run.Runner``), its statistics
(``micro_stats.py``) and its trivial-row rule are reused; what differs is the world (``holab`` /
``howild``), the generator (HandBooster's pixel-space model, trained per row: no micro base) and the
condition sets (``handsynth poses``). Stages, each skipping when its output exists:

    world (holab train with sequences, an oracle draw of more real train, S1-like holab test, howild test)
      -> in one pool of jobs: tools (world feature extractor for FID; recon model for the edge-case
         filter and gate Y3), poses (grasp-status vs the world's truth; rest -> grasp -> validate -> align -> fps -> cross-sample;
         per seed `poses compose` of the real / random / FPS / cross-sampled condition sets) and the
         HandBooster trainings (rows c, d, e, f)
      -> generation (c..i) + the ObMan analogue (b)
      -> edge-case filter (c..i; j = i unfiltered; and its yardsticks: real photos in the generator's
         framing, (b)'s render recipe on each condition set) -> FID -> gates + trivial rows -> downstream -> report

Rows share every budget: one HandBooster training budget, one generation sampler, equal condition
counts, one downstream recon budget with ``real:1.0, gen:0.5`` draws.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from handsynth.methods.handbooster.options import RELEASED_SPACING

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TEST_SETS = ("holab_test", "howild_test")
TRIVIAL_FID = "Trivial: blank images"
FID_RENDER_SAME_N = "FID_render_same_n"  # the rendered set's FID at this set's size (fid_at_size)
FID_VERSION = 2  # fid.json without it (before the size-matched FID) is computed again
ORACLE = "oracle"  # downstream: real train + a second real draw (holab_oracle) at the synthetic ratio
# Table 5's four metrics (root-relative and PA J-PE, V-PE); the downstream table shows all twelve.
TABLE5 = ["RR J-PE", "RR V-PE", "PA J-PE", "PA V-PE"]
RR = ["RR J-PE", "RR J-AUC", "RR V-PE", "RR V-AUC", "RR F@5", "RR F@15"]
HIGHER = {"PA J-AUC", "PA V-AUC", "PA F@5", "PA F@15", "RR J-AUC", "RR V-AUC", "RR F@5", "RR F@15"}

# id, text, [(better row, worse row, recon width or "fid")], metrics. Every metric is tested on both
# test sets (holab = S1-like unseen subjects, howild = MOW-like), Holm-corrected together.
CLAIMS = [
    (
        "HB-e>c",
        "(e) normal & texture beat (c) depth & seg on RR J-PE / V-PE",
        [("e", "c")],
        ["RR J-PE", "RR V-PE"],
    ),
    (
        "HB-e>d",
        "(e) normal & texture beat (d) normal & seg on RR J-PE / V-PE",
        [("e", "d")],
        ["RR J-PE", "RR V-PE"],
    ),
    ("HB-f>e", "(f) the orientation embedding improves the root-relative metrics over (e)", [("f", "e")], RR),
    ("HB-f>a", "(f) HandBooster data beat (a) real only on all metrics", [("f", "a")], None),
    ("HB-g>f", "(g) novel grasp conditions beat (f) on RR J-PE", [("g", "f")], ["RR J-PE"]),
    ("HB-h>g", "(h) FPS beats (g) random picks on the four Table-5 metrics", [("h", "g")], TABLE5),
    (
        "HB-i>h",
        "(i) cross-distribution sampling beats (h) FPS on the four Table-5 metrics",
        [("i", "h")],
        TABLE5,
    ),
    (
        "HB-fid",
        "FID of HandBooster sets (e..i) is below the rendered set (b)",
        [(x, "b") for x in "efghi"],
        ["FID"],
    ),
    ("HB-boost", "(i) boosts two recon configurations over (a) (Table-5 metrics)", [("i", "a")], TABLE5),
    ("HB-filter", "(ours) the edge-case filter helps: (i) beats (j) = (i) unfiltered", [("i", "j")], TABLE5),
]


# The suite's handsynth commands run in-process, several per child (``jobs`` children side by side):
# a tiny job is mostly interpreter + torch start-up, which this pays once per child instead of per command.
# Every child walks the whole list and runs the jobs it claims first (a file created exclusively in the
# claims folder), so one long job does not leave the other children idle with their share done.
_INPROC = (
    "import json, os, sys, time\n"
    "from handsynth.cli import main\n"
    "payload, times, claims = sys.argv[1:4]\n"
    "done = {}\n"
    "for name, cmds in json.loads(payload):\n"
    "    try:\n"
    "        os.close(os.open(os.path.join(claims, name), os.O_CREAT | os.O_EXCL))\n"
    "    except FileExistsError:\n"
    "        continue\n"
    "    t0 = time.time()\n"
    "    for argv in cmds:\n"
    "        print('$ handsynth', ' '.join(argv), flush=True)\n"
    "        sys.argv = ['handsynth', *argv]  # what a command records as its own command line\n"
    "        rc = main(argv)\n"
    "        if rc:\n"
    "            sys.exit(rc)\n"
    "    done[name] = round(time.time() - t0, 1)\n"
    "    open(times, 'w').write(json.dumps(done))\n"
)


def row_key(letter: str, methods: dict) -> str:
    return next(m for m in methods if m.split("_")[0] == letter)


# -- the runner ----------------------------------------------------------------------------------------
def make_runner(base_cls):
    """The suite's runner class, a subclass of ``run.Runner`` (passed in: run.py imports this module)."""

    class HandBoosterRunner(base_cls):
        @property
        def hb(self) -> dict:
            return self.cfg["hb"]

        def rows(self) -> list[str]:
            return list(self.cfg["methods"])

        def spec(self, row: str) -> dict:
            return self.cfg["methods"][row] or {}

        def row_seeds(self, row: str) -> list[int]:
            """The seeds a row is drawn at: the suite's, or the row's own subset (``seeds:``; row (k), a
            descriptive cost row, at one seed)."""
            own = (self.cfg["methods"].get(row) or {}).get("seeds")
            return [s for s in self.cfg["seeds"] if own is None or s in own]

        def poses(self, name: str) -> Path:
            return self.work / "poses" / name

        @property
        def real_grasps(self) -> Path:
            """Qr: the real frames `poses grasp-status` calls grasping (beside the labelled records)."""
            return self.poses("labelled") / "grasping.jsonl"

        def conds(self, kind: str, seed: int) -> Path:
            return self.work / "conds" / f"{kind}_seed{seed}"

        def raw_dir(self, row: str, seed: int) -> Path:
            """A row's generated set before the filter (``generate_from``: another row's generation)."""
            src = self.spec(row).get("generate_from") or row
            return self.work / "gen_raw" / src / f"seed{seed}"

        def set_dir(self, row: str, seed: int) -> Path:
            """The synthetic set a row's downstream run draws (filtered when the row filters)."""
            spec = self.spec(row)
            if spec.get("synthetic") == "render":
                return self.gen_dir(row, seed)
            return self.gen_dir(row, seed) if spec.get("filter", True) else self.raw_dir(row, seed)

        def widths(self, row: str) -> list[float]:
            extra = (
                [w for w in self.hb.get("recon_widths", [])[1:]] if self.spec(row).get("all_widths") else []
            )
            return [self.cfg["recon"]["width"], *extra]

        def down(self, row: str, width: float, seed: int) -> Path:
            return self.work / "downstream" / f"{row}_w{width:g}" / f"seed{seed}"

        def filter_argv(self, data: Path, out: Path) -> list[str]:
            """The suite's `handsynth filter` of ``data`` into ``out`` (its estimator, preset, reference, caps);
            once the suite's thresholds are known, they are passed instead of scoring the reference again."""
            rec, shared = self._filter_recipe(), self.shared_thresholds()
            if shared is not None:
                return filter_argv(data, out, rec["estimator"], None, None, rec["caps"], thresholds=shared)
            return filter_argv(data, out, rec["estimator"], rec["preset"], rec["reference"], rec["caps"])

        @property
        def filter_thresholds(self) -> Path:
            """The thresholds the first filter job computed from the reference, shared by every other one."""
            return self.work / "eval" / "filter_thresholds.json"

        def shared_thresholds(self) -> Path | None:
            """``filter_thresholds`` when it exists and was made with the suite's current filter recipe."""
            path = self.filter_thresholds
            return path if path.exists() and _read(path).get("made_with") == self._filter_recipe() else None

        def _filter_recipe(self) -> dict:
            ref = self.data(self.hb.get("filter_reference", "holab_oracle"))
            return {"preset": self.hb["filter"], "reference": str(ref), "estimator": str(self.tool("recon")),
                    "caps": [str(c) for c in _flags(self.hb.get("filter_max_mm") or {})]}  # fmt: skip

        def share_filter_thresholds(self, report: Path) -> None:
            """Keep a filter report's thresholds (and the recipe they came from) for the suite's next jobs."""
            summary = json.loads(report.read_text())["summary"]
            keep = {k: summary[k] for k in ("thresholds_mm", "thresholds_from")}
            self.filter_thresholds.parent.mkdir(parents=True, exist_ok=True)
            self.filter_thresholds.write_text(
                json.dumps({**keep, "made_with": self._filter_recipe()}, indent=2)
            )

        def drop_outputs_of(self, model_row: str, seed: int) -> None:
            """Remove every set, FID and downstream run drawn from ``model_row``'s model at ``seed``."""
            self.drop_sets([m for m in self.rows() if (self.spec(m).get("model") or m) == model_row], seed)

        def drop_sets(self, rows: list[str], seed: int) -> None:
            """Remove ``rows``' sets at ``seed`` (and those of rows that reuse them), their downstream runs
            and the seed's FIDs."""
            rows = rows + [m for m in self.rows() if self.spec(m).get("generate_from") in rows]
            for row in dict.fromkeys(rows):
                for path in (self.raw_dir(row, seed), self.gen_dir(row, seed)):
                    shutil.rmtree(path, ignore_errors=True)
                for width in self.widths(row):
                    shutil.rmtree(self.down(row, width, seed), ignore_errors=True)
            (self.work / "eval" / f"seed{seed}" / "fid.json").unlink(missing_ok=True)

        def trained_rows(self) -> list[str]:
            return [m for m in self.rows() if self.spec(m).get("train")]

        def generated_rows(self) -> list[str]:
            """Rows whose set comes out of a HandBooster model."""
            return [
                m
                for m in self.rows()
                if self.spec(m).get("conditions") and self.spec(m).get("synthetic") != "render"
            ]

        def synthetic_rows(self) -> list[str]:
            return [m for m in self.rows() if self.spec(m).get("conditions")]

        def fid_rows(self, seed: int) -> list[str]:
            """The synthetic rows drawn at ``seed`` (each gets an FID)."""
            return [m for m in self.synthetic_rows() if seed in self.row_seeds(m)]

        def run_cli(self, jobs: list[tuple[str, list[list]]]) -> None:
            """Jobs of handsynth argv lists, shared by ``jobs`` in-process children (each claims the next
            unclaimed job); each job's own seconds land in timings.json as if it had run alone."""
            if not jobs:
                return
            for orphan in self.log_dir.glob("*.times.json"):  # a killed run's finished jobs
                self._merge_times(orphan)
            self._save_timings()  # before the children reuse those file names
            n = min(len(jobs), max(1, int(self.cfg.get("jobs", 1))))
            payload = json.dumps([[jn, [[str(c) for c in argv] for argv in cmds]] for jn, cmds in jobs])
            claims = Path(tempfile.mkdtemp(prefix="claims-", dir=self.log_dir))
            more = f"_and_{len(jobs) - 1}_more" if len(jobs) > 1 else ""
            names = [f"{jobs[0][0]}{more}_child{k}" for k in range(n)]  # never a job's own name
            children = [
                (
                    name,
                    [
                        sys.executable,
                        "-c",
                        _INPROC,
                        payload,
                        str(self.log_dir / f"{name}.times.json"),
                        str(claims),
                    ],
                )
                for name in names
            ]
            try:
                self.parallel(children)
            finally:
                shutil.rmtree(claims, ignore_errors=True)
                for name in names:
                    self.timings.setdefault("jobs", {}).pop(name, None)
                    self._merge_times(self.log_dir / f"{name}.times.json")
                self._save_timings()

        def _merge_times(self, path: Path) -> None:
            """Add a child's per-job seconds to timings.json's (a resumed job adds what it did, as the
            base runner's jobs do) and remove the child's file."""
            if not path.exists():
                return
            jobs_t = self.timings.setdefault("jobs", {})
            for job, seconds in json.loads(path.read_text() or "{}").items():
                jobs_t[job] = round(jobs_t.get(job, 0.0) + seconds, 1)
            path.unlink()

        # -- stages -----------------------------------------------------------------------------------
        def hb_world_cmd(self, split: str, spec: dict) -> list:
            """``handsynth world render`` argv (no program name) for one split."""
            cmd = ["world", "render", "--domain", spec["domain"], "--n", spec["n"], "--out", self.data(split)]
            cmd += [
                "--size",
                self.cfg["size"],
                "--seed",
                spec["seed"],
                "--maps",
                self.hb["maps"],
                "--no-local",
            ]
            if spec.get("sequence_length"):
                cmd += ["--sequence-length", spec["sequence_length"]]
            if spec.get("subjects"):
                cmd += ["--subjects", spec["subjects"]]
            return cmd

        def stage_world(self) -> None:
            world = self.hb["world"]
            self.run_cli(
                [(f"world_{k}", [self.hb_world_cmd(k, v)]) for k, v in world.items() if not self._done(k)]
            )
            self._mark_done(list(world))

        def _features(self) -> None:
            if not (self.tool("features") / "model.safetensors").exists():
                self.sh("tool_features", self.self_job("hb_features"))

        @property
        def synthetic_photos(self) -> int:
            """How many holab photos of held-out synthesized grasps the filter's estimator trains on
            besides real train (``hb.filter_estimator.synthetic_photos``; 0: real train only, the paper's)."""
            return int((self.hb.get("filter_estimator") or {}).get("synthetic_photos", 0))

        def _heldout_photo_cmds(self) -> list[list]:
            """The filter estimator's extra data, as the condition creator makes grasps but from its own
            seed (none of the condition sets' grasps): rest -> grasp -> validate -> align -> compose (all
            synthetic, the suite's views) -> holab photos of those records (``data/holab_synth_photos``)."""
            fe = self.hb["filter_estimator"]
            seed, n = int(fe.get("grasp_seed", 1)), self.synthetic_photos
            out = lambda k: self.poses(f"{k}_heldout")  # noqa: E731
            conds = self.work / "conds" / "heldout_photos"
            steps = [
                *self.grasp_steps(out, seed, fe.get("grasps_per_object", self.hb["grasp"]["n_per_object"])),
                self.compose_cmd(out("aligned"), n, 1.0, seed, conds),
                ["world", "render", "--domain", "holab", "--poses", conds, "--n", n, "--size", self.cfg["size"],
                 "--seed", 1000 + seed, "--maps", "", "--no-local", "--out", self.data("holab_synth_photos")],
            ]  # fmt: skip
            return _not_done(steps)

        def grasp_steps(self, out, seed: int, n_per_object: int) -> list[list]:
            """``poses rest -> grasp -> validate -> align`` (to Qr) into ``out(name)`` for name in rest, grasps,
            valid, aligned: the condition creator's grasps and the filter estimator's own pool (and the
            filter probe's) are made alike, from their own seeds."""
            g, real = self.hb["grasp"], self.real_grasps
            names = ",".join(_object_names(real)[: g.get("max_objects")])
            return [
                ["poses", "rest", "--objects", "world", "--n", 1, "--out", out("rest")],
                ["poses", "grasp", "--objects", "world", "--names", names, "--rest", out("rest"), "--n-per-object",
                 n_per_object, "--batch", g["batch"], "--iters", g["iters"], "--out", out("grasps"), "--seed", seed],
                ["poses", "validate", "--in", out("grasps"), "--out", out("valid"), *_flags(g.get("validate") or {})],
                ["poses", "align", "--in", out("valid"), "--reference", real, "--out", out("aligned"), "--seed", seed],
            ]  # fmt: skip

        def compose_cmd(self, synthetic: Path, n: int, fraction: float, seed: int, out: Path) -> list:
            """``poses compose`` of Qr and ``synthetic`` with the suite's novel views."""
            return ["poses", "compose", "--real", self.real_grasps, "--synthetic", synthetic, "--n", n,
                    "--synthetic-fraction", fraction, "--max-deg", self.hb["views"]["max_deg"], "--seed", seed,
                    "--out", out]  # fmt: skip

        def _heldout_outputs(self) -> list[Path]:
            return [*(self.poses(f"{k}_heldout") for k in ("rest", "grasps", "valid", "aligned")),
                    self.work / "conds" / "heldout_photos", self.data("holab_synth_photos")]  # fmt: skip

        def _recon_tool_jobs(self) -> list:
            """The filter's estimator (and gate Y3's model): real train, plus holab photos of held-out
            synthesized grasps when ``synthetic_photos`` (one job: the photos first). Reads Qr, so it is
            built after grasp status has run."""
            stamp = self.tool("recon") / "suite_recipe.json"
            if self.artifact_finished("recon"):
                # a tool without a stamp predates stamps: kept as it is
                if not stamp.exists() or _read(stamp) == self._estimator_recipe():
                    return []
                print("  the filter's estimator was trained with other settings: trained again", flush=True)
                for folder in (self.tool("recon"), *self._heldout_outputs()):
                    shutil.rmtree(folder, ignore_errors=True)
            self.drop_filter_outputs()  # a new estimator: what the old one judged is judged again
            t = self.cfg["tools"]["recon"]
            data = [self.data("holab_train")]
            chain = []
            if self.synthetic_photos:
                chain = self._heldout_photo_cmds()
                data.append(self.data("holab_synth_photos"))
            cmd = self.recon_train_cmd(data, self.tool("recon"), t["steps"], t["batch_size"], 0)
            return [("tool_recon", [*chain, _argv(cmd)])]

        def _recon_tool_finish(self) -> None:
            for o in self._heldout_outputs():
                if (o / "metadata.jsonl").exists():
                    (o / ".done").touch()
            if (self.tool("recon") / "checkpoints").exists():
                (self.tool("recon") / ".done").touch()
                (self.tool("recon") / "suite_recipe.json").write_text(
                    json.dumps(self._estimator_recipe(), indent=1)
                )

        def _estimator_recipe(self) -> dict:
            """What the filter's estimator is made from (a finished one with another recipe is retrained)."""
            return {"recon": self.cfg["tools"]["recon"], "size": self.cfg["size"], "grasp": self.hb["grasp"],
                    "views": self.hb["views"], "filter_estimator": self.hb.get("filter_estimator") or {}}  # fmt: skip

        def drop_filter_outputs(self) -> None:
            """Remove what the filter's estimator decided: its thresholds, the filtered sets and the
            downstream runs and FIDs drawn from them, its yardsticks and gate Y3."""
            self.filter_thresholds.unlink(missing_ok=True)
            for row in self.generated_rows():
                if not self.spec(row).get("filter", True):
                    continue
                for seed in self.row_seeds(row):
                    shutil.rmtree(self.gen_dir(row, seed), ignore_errors=True)
                    for width in self.widths(row):
                        shutil.rmtree(self.down(row, width, seed), ignore_errors=True)
            for p in [*self.work.glob("eval/seed*/fid.json"), self.work / "eval" / "filter_yardstick.json",
                      self.work / "eval" / "yardsticks.json"]:  # fmt: skip
                p.unlink(missing_ok=True)
            for kept in self.work.glob("eval/filter_yardstick/*_kept"):
                shutil.rmtree(kept, ignore_errors=True)

        def _pose_outputs(self) -> list[Path]:
            return [self.poses(k) for k in ("rest", "grasps", "valid", "aligned", "fps", "cross")]

        def _poses_jobs(self) -> list:
            """The novel condition creator, once (seed 0), then one `poses compose` per set and seed: grasp
            status and Qr in this process (the chain reads them), then the chain as one job."""
            g = self.hb["grasp"]
            p = self.poses
            if not (p("labelled") / ".done").exists():
                argv = ["poses", "grasp-status", "--in", self.data("holab_train"), "--out", p("labelled")]
                self.run_cli([("grasp_status", [argv])])
                (p("labelled") / ".done").touch()
            real = self.real_grasps
            if not real.exists():
                split_real_grasps(self)
            steps = [
                *self.grasp_steps(p, 0, g["n_per_object"]),
                ["poses", "fps", "--in", p("aligned"), "--per-object", self.hb["fps_per_object"], "--out", p("fps")],
                ["poses", "cross-sample", "--synthetic", p("fps"), "--real", real, "--n", self.hb["cross_n"], "--out", p("cross")],
            ]  # fmt: skip
            chain = _not_done(steps)
            pools = {"real": real, "random": p("aligned"), "fps": p("fps"), "cross": p("cross")}
            for seed in self.cfg["seeds"]:
                for kind in self._condition_kinds():
                    frac = 0.0 if kind == "real" else self.hb["synthetic_fraction"]
                    chain += _not_done(
                        [self.compose_cmd(pools[kind], self.hb["n_gen"], frac, seed, self.conds(kind, seed))]
                    )
            # One child, one command after the other (each reads the one before; compose is cheap).
            return [("poses_creator", chain)] if chain else []

        def _condition_kinds(self) -> list[str]:
            return sorted({self.spec(m)["conditions"] for m in self.synthetic_rows()})

        def _poses_finish(self) -> None:
            for o in self._pose_outputs():
                if (o / "metadata.jsonl").exists():
                    (o / ".done").touch()
            for seed in self.cfg["seeds"]:
                for kind in self._condition_kinds():
                    if (self.conds(kind, seed) / "metadata.jsonl").exists():
                        (self.conds(kind, seed) / ".done").touch()

        def stage_prepare(self) -> None:
            """Tools, pose chain and HandBooster trainings in one pool of jobs: none reads another's
            output, and the recon tool alone would hold one core while the other waits."""
            self._features()
            # first: grasp status (Qr) runs here, and the recon tool's photos read it
            poses = self._poses_jobs()
            self.run_cli(self._recon_tool_jobs() + poses + self._training_jobs())
            self._recon_tool_finish()
            self._poses_finish()

        def hb_config(self, row: str, seed: int) -> Path:
            """The row's HandBooster config: the suite's model and budget, the row's maps and orientation."""
            cfg = yaml.safe_load((REPO / self.hb["config"]).read_text())
            t, spec = self.hb["train"], self.spec(row)["train"]
            cfg["model"].update(self.hb.get("model") or {})
            cfg["model"]["sample_size"] = self.hb["sample_size"]
            cfg["model"]["conditions"] = list(spec["conditions"])
            cfg["orientation"]["enabled"] = bool(spec.get("orientation", True))
            cfg["train"].update(
                max_steps=t["steps"], batch_size=t["batch_size"], learning_rate=t["learning_rate"],
                checkpoint_every=max(1, t["steps"] // 2), validate_every=0, log_every=max(1, t["steps"] // 20),
                seed=seed, checkpoints_total_limit=1, checkpoint_every_minutes=5,
            )  # fmt: skip
            return self.write_config(f"{row}_seed{seed}", cfg)

        def _training_jobs(self) -> list:
            jobs = []
            for seed in self.cfg["seeds"]:
                for row in self.trained_rows():
                    run = self.run_dir(row, seed)
                    if (run / "unet" / "config.json").exists():
                        if _trained_steps(run) == self.hb["train"]["steps"]:
                            continue
                        # a finished run at another budget: it resumes to the new one (constant learning
                        # rate), and whatever was drawn from its old weights is redone
                        self.drop_outputs_of(row, seed)
                        shutil.rmtree(run / "unet")
                    argv = ["train", "--method", "handbooster", "--config", self.hb_config(row, seed),
                            "--in", self.data("holab_train"), "--out", run]  # fmt: skip
                    jobs.append((f"train_{row}_seed{seed}", [argv]))
            return jobs

        def stage_generate(self) -> None:
            from run import _count_records

            jobs, seen, steps = [], set(), {}
            for seed in self.cfg["seeds"]:
                for row in self.synthetic_rows():
                    spec = self.spec(row)
                    if seed not in self.row_seeds(row):
                        continue
                    if spec.get("synthetic") == "render":
                        if _count_records(self.gen_dir(row, seed)) < _count_records(
                            self.conds(spec["conditions"], seed)
                        ):
                            self.sh(
                                f"render_{row}_seed{seed}",
                                self.self_job("hb_rendered", "--seed", str(seed), "--split", row),
                            )
                        continue
                    out = self.raw_dir(row, seed)
                    gen = self.generate_options(row)
                    if (out / ".done").exists() and _spacing(out) != gen["spacing"]:
                        self.drop_sets([row], seed)  # drawn with another sampler: drawn again
                    if out in seen or (out / ".done").exists():
                        continue
                    seen.add(out)
                    model = self.run_dir(spec.get("model") or row, seed)
                    argv = ["generate", "--method", "handbooster", "--checkpoint", model,
                            "--in", self.conds(spec["conditions"], seed), "--out", out, "--steps", gen["steps"],
                            "--eta", gen["eta"], "--guidance", gen["guidance"], "--seed", seed,
                            "--timestep-spacing", gen["spacing"], "--batch-size", gen["batch_size"]]  # fmt: skip
                    jobs.append((f"generate_{row}_seed{seed}", [argv]))
                    steps[jobs[-1][0]] = gen["steps"]
            # Longest first (more DDIM steps), so no long set is left for one child at the end.
            self.run_cli(sorted(jobs, key=lambda job: -steps[job[0]]))
            for out in seen:
                if (out / "metadata.jsonl").exists():
                    (out / ".done").touch()

        @property
        def min_set_images(self) -> int:
            """A filtered set smaller than this trains no downstream model and gets no FID: at the
            downstream draw ratio its few images would repeat hundreds of times (memorised, not learnt)."""
            return max(1, math.ceil(float(self.hb.get("min_set_fraction", 0.0)) * int(self.hb["n_gen"])))

        def generate_options(self, row: str) -> dict:
            """The suite's sampler with the row's own overrides (row (k): more DDIM steps); the released
            sampler's spacing unless the config names another."""
            return {
                "spacing": RELEASED_SPACING,
                **self.hb["generate"],
                **(self.spec(row).get("generate") or {}),
            }

        def stage_filter(self) -> None:
            jobs = []
            for seed in self.cfg["seeds"]:
                for row in self.generated_rows():
                    out = self.gen_dir(row, seed)
                    if seed not in self.row_seeds(row):
                        continue
                    if not self.spec(row).get("filter", True) or (out / ".done").exists():
                        continue
                    jobs.append((f"filter_{row}_seed{seed}", self.raw_dir(row, seed), out))
            if jobs and self.shared_thresholds() is None:
                # the reference is scored once: the first job alone, its thresholds for every other one
                self.run_cli([(jobs[0][0], [self.filter_argv(*jobs[0][1:])])])
                self.share_filter_thresholds(jobs[0][2] / "filter_report.json")
                jobs = jobs[1:]
            self.run_cli([(name, [self.filter_argv(data, out)]) for name, data, out in jobs])
            for seed in self.cfg["seeds"]:
                for row in self.generated_rows():
                    if (self.gen_dir(row, seed) / "filter_report.json").exists():
                        (self.gen_dir(row, seed) / ".done").touch()
            yard = _read(self.work / "eval" / "filter_yardstick.json")
            novel = set(self.filtered_condition_kinds()) - {"real"}
            if not yard or (not any("synthesized_kept" in y for y in yard.values()) and novel):
                # missing, or from before the synthesized-grasp count: the job only redoes what is missing
                self.sh("filter_yardstick", self.self_job("hb_filter_yardstick"))

        def filtered_condition_kinds(self) -> list[str]:
            """The condition sets the filtered rows draw from, each once, in row order."""
            rows = [row for row in self.generated_rows() if self.spec(row).get("filter", True)]
            return list(dict.fromkeys(self.spec(row)["conditions"] for row in rows))

        def stage_metrics(self) -> None:
            jobs = []
            for s in self.cfg["seeds"]:
                done = _read(self.work / "eval" / f"seed{s}" / "fid.json")
                if (
                    not set(self.fid_rows(s)) <= set(done.get("rows", {}))
                    or done.get("version") != FID_VERSION
                ):
                    jobs.append((f"fid_seed{s}", self.self_job("hb_fid", "--seed", str(s))))
            self.parallel(jobs)

        def stage_yardsticks(self) -> None:
            if not (self.work / "eval" / "yardsticks.json").exists():
                self.sh("yardsticks", self.self_job("hb_yardsticks"))

        def downstream_rows(self) -> list[str]:
            return [*self.rows(), ORACLE]

        def downstream_runs(self) -> list[tuple[str, float]]:
            """(row, recon width) of every downstream training; the oracle at the first width."""
            return [
                (row, w)
                for row in self.downstream_rows()
                for w in (self.widths(row) if row != ORACLE else self.widths("a_real")[:1])
            ]

        def compared_only_with(self, row: str, width: float) -> str | None:
            """The row that ``row`` at ``width`` exists only to be compared with (``hb.only_beside``:
            (j) is (i) unfiltered, (a) at the second width is the boost claim's second baseline)."""
            key = row if width == self.cfg["recon"]["width"] else f"{row}@{width:g}"
            return (self.hb.get("only_beside") or {}).get(key)

        def trains_downstream(self, row: str, seed: int) -> bool:
            """Whether ``row`` gets a downstream run at ``seed`` (drawn there, its set large enough)."""
            from run import _count_records

            if seed not in self.row_seeds(row):
                return False
            if not self.spec(row).get("conditions"):
                return True
            return _count_records(self.set_dir(row, seed)) >= self.min_set_images

        def stage_downstream(self) -> None:
            from run import _count_records

            d = self.cfg["downstream"]
            jobs = []
            for seed in self.cfg["seeds"]:
                for row, width in self.downstream_runs():
                    out = self.down(row, width, seed)
                    if seed not in self.row_seeds(row):
                        continue
                    if all((out / f"eval_{t}" / "metrics.json").exists() for t in TEST_SETS):
                        continue
                    data = [self.data("holab_train")]
                    if row == ORACLE:
                        data.append(f"{self.data('holab_oracle')}:{d['synth_ratio']}")
                    elif self.spec(row).get("conditions"):
                        if not self.trains_downstream(row, seed):
                            kept, need = _count_records(self.set_dir(row, seed)), self.min_set_images
                            print(
                                f"  skip downstream {row} seed {seed}: the filter kept {kept} images (< {need})"
                            )
                            continue
                        data.append(f"{self.set_dir(row, seed)}:{d['synth_ratio']}")
                    partner = self.compared_only_with(row, width)
                    if partner and not self.trains_downstream(partner, seed):
                        print(f"  skip downstream {row} w{width:g} seed {seed}: it is only compared with "
                              f"{partner}, which trains none at this seed")  # fmt: skip
                        continue
                    train = _argv(self.recon_train_cmd(data, out / "run", d["steps"], d["batch_size"], seed))
                    train[train.index("--width") + 1] = str(width)
                    evals = [["recon", "eval", "--checkpoint", out / "run", "--in", self.data(t), "--out", out / f"eval_{t}"]
                             for t in TEST_SETS]  # fmt: skip
                    jobs.append((f"downstream_{row}_w{width:g}_seed{seed}", [train, *evals]))
            self.run_cli(jobs)

        def stage_report(self) -> Path:
            return write_report(self)

        def run_all(self) -> Path:
            self.stage("world", self.stage_world)
            self.stage("tools, poses + handbooster training", self.stage_prepare)
            self.stage("generate", self.stage_generate)
            self.stage("filter", self.stage_filter)
            self.stage("fid", self.stage_metrics)
            self.stage("yardsticks + gates", self.stage_yardsticks)
            self.stage("downstream", self.stage_downstream)
            return self.stage_report()

    return HandBoosterRunner


def _argv(cmd: list) -> list[str]:
    """A handsynth command line without its program name (``run.handsynth_cmd()`` prefix)."""
    from run import handsynth_cmd

    prefix = handsynth_cmd()
    assert [str(c) for c in cmd[: len(prefix)]] == prefix, cmd[:3]
    return [str(c) for c in cmd[len(prefix) :]]


def filter_argv(
    data: Path,
    out: Path,
    estimator: Path,
    preset: str | None,
    reference: Path | None,
    caps: list = (),
    thresholds: Path | None = None,
) -> list[str]:
    """`handsynth filter` argv (CPU, restarting ``out``): the suite's filter stage, its yardsticks and the
    budget probe build the same command (``thresholds``: an earlier run's, instead of preset + reference)."""
    given = (
        ["--thresholds", str(thresholds)]
        if thresholds
        else ["--preset", preset, "--reference", str(reference)]
    )
    return ["filter", "--in", str(data), "--estimator", str(estimator), "--out", str(out), *given,
            "--device", "cpu", "--overwrite", *map(str, caps)]  # fmt: skip


def _not_done(cmds: list[list]) -> list[list]:
    """The commands whose ``--out`` folder is not marked done (a resumed run skips the others)."""
    return [a for a in cmds if not (Path(a[a.index("--out") + 1]) / ".done").exists()]


def _model_overrides(hb: dict) -> str:
    """The suite's changes to the config's model, as the report's header names them."""
    return "".join(f", {k.replace('_', ' ')} {v}" for k, v in (hb.get("model") or {}).items())


def _spacing(generated: Path) -> str:
    """The timestep spacing a generated set was sampled with (its settings name any but the released)."""
    return _read(generated / "handsynth_run.json").get("timestep_spacing", RELEASED_SPACING)


def _trained_steps(run: Path) -> int | None:
    """The step budget a finished HandBooster run was trained to (its written config)."""
    cfg = _read_yaml(run / "handsynth_config.yaml")
    return int(cfg["train"]["max_steps"]) if cfg.get("train") else None


def _read_yaml(p: Path) -> dict:
    return (yaml.safe_load(p.read_text()) or {}) if p.exists() else {}


def _flags(options: dict) -> list:
    out = []
    for k, v in options.items():
        out += [f"--{k.replace('_', '-')}", v]
    return out


def _object_names(records: Path) -> list[str]:
    """The object kinds the real grasping frames hold (grasp synthesis runs on these)."""
    names = []
    for line in records.read_text().splitlines():
        if line.strip():
            for o in json.loads(line).get("objects") or []:
                names.append(o["name"])
    return sorted(set(names))


# -- child jobs ------------------------------------------------------------------------------------------
def job_features(r) -> None:
    from handsynth.micro.data import load_world
    from handsynth.micro.features import train_feature_extractor

    t = r.cfg["tools"]["features"]
    arrays = load_world([r.data("holab_train")], r.cfg["size"])
    net, stats = train_feature_extractor(arrays, steps=t["steps"], batch_size=t["batch_size"])
    net.save(r.tool("features"), {"training": stats, "data": ["holab_train"]})


def split_real_grasps(r) -> None:
    """The real grasping frames (Qr: `poses grasp-status` says grasping) and the status's precision /
    recall against the world's true flag (``eval/grasp_status.json``)."""
    from handsynth.data import read_dataset

    truth = {s.id: bool(s.extra.get("grasping")) for s in read_dataset(r.data("holab_train"))}
    lines = (r.poses("labelled") / "metadata.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines if x.strip()]
    pred = {rec["id"]: bool(rec.get("grasping")) for rec in recs}
    tp = sum(pred[k] and truth[k] for k in pred)
    fp = sum(pred[k] and not truth[k] for k in pred)
    fn = sum(truth[k] and not pred[k] for k in pred)
    out = {
        "n": len(pred),
        "true_grasping": sum(truth.values()),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }
    (r.work / "eval").mkdir(parents=True, exist_ok=True)
    (r.work / "eval" / "grasp_status.json").write_text(json.dumps(out, indent=2))
    # Beside the labelled records, so the files they name stay relative to their folder.
    kept = [json.dumps(rec) for rec in recs if rec.get("grasping")]
    tmp = r.real_grasps.with_suffix(".tmp")
    tmp.write_text("\n".join(kept) + "\n")
    tmp.replace(r.real_grasps)


def job_rendered(r, seed: int, row: str) -> None:
    """Row (b), the ObMan analogue: the condition set's texture render (hand + object, flat colours)
    composited on random wild backgrounds, then cropped as HandBooster crops (same framing as c..i)."""
    work = r.work / "gen_raw" / row / f"seed{seed}"
    render_composite(r, r.conds(r.spec(row)["conditions"], seed), work, r.gen_dir(row, seed), seed)


def render_composite(r, conds: Path, work: Path, out: Path, seed: int) -> None:
    """Row (b)'s recipe on a condition set: maps and backgrounds drawn under ``work``, images in ``out``."""
    from PIL import Image
    from run import _count_records

    from handsynth.cli import main as cli_main
    from handsynth.data import dataset_root, read_dataset, write_metadata
    from handsynth.methods.handbooster.data import crop_maps, hand_box, read_rgb_map
    from handsynth.micro.empty import render_empty
    from handsynth.render.crop import crop_intrinsics

    maps, bgs = work / "maps", work / "backgrounds"
    n = r.hb["n_gen"]
    if _count_records(maps) < _count_records(conds):
        argv = ["render", "--in", str(conds), "--out", str(maps), "--maps", "texture,seg", "--no-local"]
        if cli_main(argv):
            raise RuntimeError(f"handsynth {' '.join(argv)} failed")
    if not (bgs / "metadata.jsonl").exists():
        render_empty("wild", n, r.cfg["size"], 100 + seed, bgs)
    backgrounds = [dataset_root(bgs) / s.file_name for s in read_dataset(bgs)]
    rng = np.random.default_rng(seed)
    size, root = r.hb["sample_size"], dataset_root(maps)
    (out / "images").mkdir(parents=True, exist_ok=True)
    samples = []
    for s in read_dataset(maps):
        tex = read_rgb_map("texture", root / s.conditions["texture"], s.width, s.height)
        seg = read_rgb_map("seg", root / s.conditions["seg"], s.width, s.height)
        with Image.open(backgrounds[int(rng.integers(len(backgrounds)))]) as im:
            bg = np.asarray(im.convert("RGB").resize((s.width, s.height), Image.Resampling.BICUBIC))
        photo = np.where((seg[..., :1] > 0), tex, bg).astype(np.uint8)
        box = hand_box(s.hands[0], s.width, s.height, 1.5, seg)
        crop = crop_maps({"image": photo}, box, size, mirror=False)["image"]
        s = _crop_record(s, crop_intrinsics(np.asarray(s.K, np.float64), box, size), size)
        s.file_name = f"images/{s.id}.png"
        Image.fromarray(crop).save(out / s.file_name)
        samples.append(s)
    write_metadata(out / "metadata.jsonl", samples)


def real_crops(src: Path, dst: Path, size: int, expand: float = 1.5) -> int:
    """The real photos of ``src`` cropped as the generator frames its images (hand + held object box x
    ``expand``, ``size``^2, one record per hand): what the filter keeps of these is its ceiling."""
    from PIL import Image

    from handsynth.data import read_dataset, write_metadata
    from handsynth.methods.handbooster.data import hand_box
    from handsynth.methods.handbooster.generator import crop_record
    from handsynth.render.crop import crop_image

    (dst / "images").mkdir(parents=True, exist_ok=True)
    out = []
    for s in read_dataset(src):
        with Image.open(src / s.file_name) as im:
            img = np.asarray(im.convert("RGB"))
        seg = None
        if "seg" in s.conditions:
            with Image.open(src / s.conditions["seg"]) as im:
                seg = np.asarray(im)
        for h in s.hands:
            box = hand_box(h, s.width, s.height, expand, seg)
            rec = crop_record(s, box, size)
            rec.hands = [x for x in rec.hands if x.side == h.side]
            rec.id = f"{s.id}-{h.side}" if len(s.hands) > 1 else s.id
            rec.conditions, rec.file_name = {}, f"images/{rec.id}.png"
            Image.fromarray(crop_image(img, box, size)).save(dst / rec.file_name)
            out.append(rec)
    write_metadata(dst / "metadata.jsonl", out)
    return len(out)


def job_filter_yardstick(r) -> None:
    """What the filter keeps of images whose labels are exact (first seed): the threshold reference's
    real photos cropped as the generator frames its images (the filter's ceiling), and row (b)'s render
    recipe on each condition set a filtered row draws from (can the estimator read those poses at all?).
    Writes ``eval/filter_yardstick.json``."""
    from run import _count_records

    from handsynth.cli import main as cli_main

    seed, ref = r.cfg["seeds"][0], r.hb.get("filter_reference", "holab_oracle")
    root = r.work / "eval" / "filter_yardstick"
    real = root / "real_crops"
    if not (real / "metadata.jsonl").exists():
        real_crops(r.data(ref), real, r.hb["sample_size"])
    sets = {f"real photos ({ref}), generator framing": real}
    kinds = r.filtered_condition_kinds()
    for kind in kinds:
        out = root / f"render_{kind}"
        if _count_records(out) < _count_records(r.conds(kind, seed)):
            render_composite(r, r.conds(kind, seed), root / f"render_{kind}_work", out, seed)
        sets[f"renders of the {kind} conditions (row b's recipe)"] = out
        photos, out = root / f"photos_{kind}_full", root / f"photos_{kind}"
        if not (out / "metadata.jsonl").exists():
            n = _count_records(r.conds(kind, seed))
            argv = ["world", "render", "--domain", "holab", "--poses", str(r.conds(kind, seed)), "--n", str(n),
                    "--size", str(r.cfg["size"]), "--seed", str(2000 + seed), "--maps", "seg", "--no-local",
                    "--out", str(photos)]  # fmt: skip
            if cli_main(argv):
                raise RuntimeError(f"handsynth {' '.join(argv)} failed")
            real_crops(photos, out, r.hb["sample_size"])
        sets[f"holab photos of the {kind} conditions"] = out
    results = {}
    for name, data in sets.items():
        kept = data.parent / f"{data.name}_kept"
        if not (kept / "filter_report.json").exists():
            argv = r.filter_argv(data, kept)
            if cli_main(argv):
                raise RuntimeError(f"handsynth {' '.join(argv)} failed")
        rep = json.loads((kept / "filter_report.json").read_text())
        results[name] = {
            "kept": rep["summary"]["kept"],
            "records": rep["summary"]["records"],
            "pass_rate": rep["summary"]["pass_rate"],
            "median_mm": {k: v["p50"] for k, v in rep["error_stats_mm"].items()},
        }
        kind = next((k for k in kinds if data.name in (f"render_{k}", f"photos_{k}")), None)
        syn = synthesized_in(r.conds(kind, seed), kept) if kind else None
        if syn:  # the pose check of novel grasps whatever draws them: exact labels, perfect photos
            results[name]["synthesized_kept"] = list(syn)
    (r.work / "eval" / "filter_yardstick.json").write_text(json.dumps(results, indent=1))


def _crop_record(s, K: np.ndarray, size: int):
    """The record seen through the crop camera ``K``: 2D joints and boxes re-projected, maps dropped."""
    import copy

    s = copy.deepcopy(s)
    s.K, s.width, s.height, s.conditions, s.local = K.tolist(), size, size, {}, None
    for key in [k for k in s.extra if k.endswith("file_name")]:
        s.extra.pop(key)
    for h in s.hands:
        uv = np.asarray(h.joints_3d, np.float64) @ K.T
        uv = uv[:, :2] / uv[:, 2:3]
        h.joints_2d = uv.tolist()
        lo, hi = uv.min(0), uv.max(0)
        h.bbox = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
    return s


def job_fid(r, seed: int) -> None:
    """FID (world feature extractor, hand crops) of every synthetic set, the blank trivial set and the
    oracle real draw against the real train photos (``eval/seed<k>/fid.json``)."""
    import torch

    from handsynth.eval.fid import fid_from_features
    from handsynth.micro.data import hand_crops, load_world
    from handsynth.micro.features import WorldFeatureExtractor

    net = WorldFeatureExtractor.load(r.tool("features"))
    size = r.cfg["size"]

    def feats(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate(
                [
                    net(torch.from_numpy(images[i : i + 64]).permute(0, 3, 1, 2)).numpy()
                    for i in range(0, len(images), 64)
                ]
            )

    def crops(folder: Path) -> np.ndarray:
        return hand_crops(load_world([folder], size), size)

    real = feats(crops(r.data("holab_train")))
    rows: dict[str, dict] = {}
    sets = {m: r.set_dir(m, seed) for m in r.fid_rows(seed)}
    sets[ORACLE] = r.data("holab_oracle")
    features: dict[str, np.ndarray] = {}
    for name, folder in sets.items():
        if not (folder / "metadata.jsonl").exists() or not (folder / "metadata.jsonl").read_text().strip():
            rows[name] = {"FID": None, "n": 0}
            continue
        features[name] = feats(crops(folder))
        n = len(features[name])
        # FID needs two images on each side (a covariance), and a set cut below min_set_images has none
        need = 2 if name == ORACLE else max(2, r.min_set_images)
        rows[name] = {"FID": fid_from_features(real, features[name]) if n >= need else None, "n": n}
    render = next((m for m in r.fid_rows(seed) if r.spec(m).get("synthetic") == "render"), None)
    for name, f in features.items():
        if render in features and name not in (render, ORACLE) and rows[name]["FID"] is not None:
            rows[name][FID_RENDER_SAME_N] = fid_at_size(real, features[render], len(f), seed)
    blank = np.full((max(2, len(real)), size, size, 3), 127, np.uint8)
    rows[TRIVIAL_FID] = {"FID": fid_from_features(real, feats(blank)), "n": len(blank)}
    out = r.work / "eval" / f"seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fid.json").write_text(
        json.dumps(
            {"reference": "holab_train", "version": FID_VERSION, "rows": rows}, indent=2, default=float
        )
    )


def fid_at_size(real: np.ndarray, fake: np.ndarray, n: int, seed: int, draws: int = 5) -> float:
    """FID of ``n`` of ``fake``'s images (mean over seeded draws without replacement): FID grows as the
    set shrinks, so a set the filter cut to ``n`` is compared with the rendered set at its own size."""
    from handsynth.eval.fid import fid_from_features

    if n >= len(fake):
        return fid_from_features(real, fake)
    rng = np.random.default_rng(seed)
    return float(
        np.mean(
            [fid_from_features(real, fake[rng.choice(len(fake), n, replace=False)]) for _ in range(draws)]
        )
    )


def job_yardsticks(r) -> None:
    """Gate Y3 per test set (the filter's recon model vs constant poses) and the trivial rows (constant
    poses learnt from real train) in HandBooster's columns, plus the grasp validation pass rates."""
    from handsynth.data import read_dataset
    from handsynth.eval.recon_eval import flat_metrics, layout_row
    from handsynth.micro.yardsticks import at_least, constant_pose_rows
    from handsynth.recon import ReconEstimator
    from handsynth.recon.evaluate import evaluate_checkpoint
    from handsynth.recon.model import load_hand_model_for

    need = float(r.cfg.get("gates", {}).get("recon_vs_constant", 2.0))
    est = ReconEstimator.from_checkpoint(str(r.tool("recon")), device="cpu")
    models = {"right": est.model.hand_model, "left": load_hand_model_for(est.cfg, "left")}
    train = read_dataset(r.data("holab_train"))
    gates, trivial = [], {}
    for t in TEST_SETS:
        rec = evaluate_checkpoint(est, r.data(t), r.work / "eval" / f"recon_tool_{t}", progress=False)
        const = constant_pose_rows(train, read_dataset(r.data(t)), models)
        trivial[t] = {name: layout_row(row, "handbooster") for name, row in const.items()}
        best = {k: min(row.get(k) or np.inf for row in const.values()) for k in ("MPJPE", "PA-MPJPE")}
        summ = flat_metrics(rec["summary"], rec["extra"])
        ratio = min(best[k] / max(float(summ.get(k) or np.inf), 1e-9) for k in best)
        gates.append(
            at_least(
                f"Y3 recon model vs constant pose (MPJPE and PA-MPJPE ratio, {t})",
                ratio,
                need,
                f"model MPJPE {summ['MPJPE']:.1f} / PA {summ['PA-MPJPE']:.1f} mm; best constant "
                f"{best['MPJPE']:.1f} / {best['PA-MPJPE']:.1f} mm",
            ).to_dict()
        )
    validation = (
        json.loads((r.poses("valid") / "validation.json").read_text())
        if (r.poses("valid") / "validation.json").exists()
        else {}
    )
    out = {"gates": gates, "trivial": trivial, "validation": validation}
    (r.work / "eval" / "yardsticks.json").write_text(json.dumps(out, indent=2, default=float))


JOBS = {
    "hb_features": lambda r, a: job_features(r),
    "hb_rendered": lambda r, a: job_rendered(r, a.seed, a.split),
    "hb_filter_yardstick": lambda r, a: job_filter_yardstick(r),
    "hb_fid": lambda r, a: job_fid(r, a.seed),
    "hb_yardsticks": lambda r, a: job_yardsticks(r),
}


# -- report ------------------------------------------------------------------------------------------------
def collect(r, seeds: list[int] | None = None) -> dict:
    """{test set: {row[@width]: {column: [per-seed values]}}} and {row: {"FID": [per seed]}}, over
    ``seeds`` (default: the suite's); position i is the same seed in every row of a table (None where a
    row has no run at that seed: drawn at fewer seeds, or its set too small to train), as the paired
    tests need."""
    seeds = r.cfg["seeds"] if seeds is None else seeds
    from micro_stats import by_seed

    from handsynth.eval.recon_eval import flat_metrics, layout_row

    down: dict[str, dict[str, dict[str, dict[int, float | None]]]] = {t: {} for t in TEST_SETS}
    for row in r.downstream_rows():
        for width in r.widths(row) if row != ORACLE else [r.cfg["recon"]["width"]]:
            key = row if width == r.cfg["recon"]["width"] else f"{row}@{width:g}"
            for t in TEST_SETS:
                for seed in seeds:
                    p = r.down(row, width, seed) / f"eval_{t}" / "metrics.json"
                    if not p.exists():
                        continue
                    m = json.loads(p.read_text())
                    for col, v in layout_row(flat_metrics(m["summary"], m["extra"]), "handbooster").items():
                        down[t].setdefault(key, {}).setdefault(col, {})[seed] = v
    fid: dict[str, dict[str, dict[int, float | None]]] = {}
    for seed in seeds:
        p = r.work / "eval" / f"seed{seed}" / "fid.json"
        if p.exists():
            for name, row in json.loads(p.read_text())["rows"].items():
                fid.setdefault(name, {}).setdefault("FID", {})[seed] = row["FID"]
                fid[name].setdefault("n", {})[seed] = row["n"]
                if FID_RENDER_SAME_N in row:
                    fid[name].setdefault(FID_RENDER_SAME_N, {})[seed] = row[FID_RENDER_SAME_N]
    return {"downstream": {t: by_seed(rows, seeds) for t, rows in down.items()}, "fid": by_seed(fid, seeds)}


def judge(r, data: dict, yard: dict) -> tuple[list, int]:
    """Every claim's paired tests (per seed) against the trivial rows, Holm-corrected together."""
    from micro_stats import ClaimResult, correct, paired_test

    methods = r.cfg["methods"]
    gates = {g["name"].split("(")[-1].rstrip(")").split(", ")[-1]: g for g in yard.get("gates", [])}
    widths = r.hb.get("recon_widths", [r.cfg["recon"]["width"]])
    out = []
    for cid, text, pairs, metrics in CLAIMS:
        c = ClaimResult(cid, text)
        if not yard:
            c.failed_gates.append("gates not measured")
        for better, worse in pairs:
            for letter in (better, worse):
                if not any(m.split("_")[0] == letter for m in methods):
                    c.failed_gates.append(f"row ({letter}) not run in this profile")
        c.failed_gates = list(dict.fromkeys(c.failed_gates))
        if c.failed_gates:
            c.note = "; ".join(c.failed_gates)
            out.append(c)
            continue
        if metrics == ["FID"]:
            triv = _mean(data["fid"].get(TRIVIAL_FID, {}).get("FID"))
            for better, worse in pairs:
                b, w = row_key(better, methods), row_key(worse, methods)
                ours = data["fid"].get(b, {})
                # the rendered set at the filtered set's own size when measured (FID grows as n shrinks)
                same_n = ours.get(FID_RENDER_SAME_N)
                theirs = same_n if same_n and r.spec(w).get("synthetic") == "render" else None
                t = paired_test(
                    ours.get("FID", []),
                    theirs or data["fid"].get(w, {}).get("FID", []),
                    False,
                    f"FID ({better} vs {worse}{' at the same size' if theirs else ''})",
                    triv,
                )
                c.tests.append(t)
            out.append(c)
            continue
        cols = metrics or list(_columns())
        stopped = {}  # a test set whose Y3 gate failed: its tests are recorded, not counted; the other's are
        for t_set in TEST_SETS:
            g = gates.get(t_set)
            if g is not None and g.get("passed") is not True:
                stopped[t_set] = _short(g)
            trivial = _best_trivial(yard.get("trivial", {}).get(t_set, {}))
            src = data["downstream"][t_set]
            for better, worse in pairs:
                b, w = row_key(better, methods), row_key(worse, methods)
                keys = [(b, w)]
                if cid == "HB-boost":
                    keys = [
                        (b if wd == widths[0] else f"{b}@{wd:g}", w if wd == widths[0] else f"{w}@{wd:g}")
                        for wd in widths
                    ]
                for kb, kw in keys:
                    suffix = f" w{kb.split('@')[1]}" if "@" in kb else ""
                    for k in cols:
                        test = paired_test(
                            src.get(kb, {}).get(k, []),
                            src.get(kw, {}).get(k, []),
                            k in HIGHER,
                            f"{t_set.split('_')[0]} {k}{suffix}",
                            trivial.get(k),
                        )
                        if t_set in stopped:
                            test.measurable = False
                            test.reason = "; ".join(
                                x for x in (test.reason, f"stopped by {stopped[t_set]}") if x
                            )
                        c.tests.append(test)
        judged = [t for t in TEST_SETS if t not in stopped]
        missing = sorted(
            {letter for pair in pairs for letter in pair}
            - {m.split("_")[0] for t in judged for m in data["downstream"][t]}
        )
        if judged and missing:  # a row without downstream runs: say why instead of "no value" per metric
            c.note = (
                f"no downstream runs for {', '.join(f'({x})' for x in missing)}: see the edge-case "
                "filter table (a set kept under hb.min_set_fraction of n_gen trains none)"
            )
            served = sorted(
                {k.split("@")[0].split("_")[0] for k in r.hb.get("only_beside") or {}} & set(missing)
            )
            if served:
                c.note += (
                    f"; {', '.join(f'({x})' for x in served)} trained only where the row it is compared "
                    "with is (hb.only_beside)"
                )
        if len(stopped) == len(TEST_SETS):
            c.failed_gates += list(stopped.values())
        else:
            c.stopped = {t.split("_")[0]: why for t, why in stopped.items()}
        c.failed_gates = list(dict.fromkeys(c.failed_gates))
        out.append(c)
    n = correct(out)
    return out, n


def synthesized_in(conds: Path, kept: Path) -> tuple[int, int] | None:
    """(kept, total) of the synthesized-grasp conditions of ``conds`` (`poses compose` records each one's
    pool) among the records of the filtered folder ``kept``, None when the conditions hold none or nothing
    is filtered yet. A kept record names its condition by ``source.input_id`` (generated sets), its own
    id (renders of the conditions) or ``source.index`` into the conditions (`world render --poses`)."""
    conds, kept = conds / "metadata.jsonl", kept / "metadata.jsonl"
    if not conds.exists() or not kept.exists():
        return None
    order = [json.loads(line) for line in conds.read_text().splitlines() if line.strip()]
    pool = {
        rec["id"]: (((rec.get("source") or {}).get("handbooster") or {}).get("compose") or {}).get("pool")
        for rec in order
    }
    synthetic = {i for i, p in pool.items() if p == "synthetic"}
    if not synthetic:
        return None
    n = 0
    for line in kept.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        src = rec.get("source") or {}
        cid = src.get("input_id", rec["id"])
        if cid not in pool and isinstance(src.get("index"), int) and 0 <= src["index"] < len(order):
            cid = order[src["index"]]["id"]
        n += cid in synthetic
    return n, len(synthetic)


def synthesized_kept(r, row: str, seed: int) -> tuple[int, int] | None:
    """(kept, generated) of a filtered row's images whose condition is a synthesized grasp, None when its
    conditions hold none or the set is not filtered yet."""
    spec = r.spec(row)
    if not spec.get("conditions"):
        return None
    return synthesized_in(r.conds(spec["conditions"], seed), r.gen_dir(row, seed))


def _filter_section(r) -> list[str]:
    """Per filtered row: images kept of those generated per seed and the median errors the filter saw."""
    rows = []
    for row in r.rows():
        reps = [r.gen_dir(row, s) / "filter_report.json" for s in r.cfg["seeds"]]
        reps = [json.loads(p.read_text()) for p in reps if p.exists()]
        if reps and r.spec(row).get("filter", True) and r.spec(row).get("synthetic") != "render":
            rows.append((row, reps))
    if not rows:
        return []
    th = rows[0][1][0]["summary"]["thresholds_mm"]
    frac = float(r.hb.get("min_set_fraction", 0.0))
    lines = [
        "",
        "## Edge-case filter",
        "",
        f"`handsynth filter --preset {r.hb['filter']}` with thresholds from "
        f"`{r.hb.get('filter_reference', 'holab_oracle')}`: MPJPE {th['mpjpe']:.1f}, MPVPE {th['mpvpe']:.1f}, "
        f"PA-MPJPE {th['pa_mpjpe']:.1f}, PA-MPVPE {th['pa_mpvpe']:.1f} mm (a hand over any is rejected). A set "
        f"kept under {100 * frac:.0f} % of n_gen (`hb.min_set_fraction`) trains no downstream model and gets "
        "no FID. Median errors are mean ± sd over seeds.",
        "",
        "`poses compose` draws a real grasp for a share of a novel set's conditions "
        f"(1 - `hb.synthetic_fraction` = {1 - float(r.hb.get('synthetic_fraction', 1.0)):.1f}): the last column "
        "counts what the filter kept of the synthesized grasps alone.",
        "",
        "| Row | kept per seed | pass rate | median MPJPE (mm) | median PA-MPJPE (mm) | kept of synthesized grasps |",
        "|---|---|---|---|---|---|",
    ]
    for row, reps in rows:
        n = {x["summary"]["records"] for x in reps}
        kept = ", ".join(str(x["summary"]["kept"]) for x in reps) + f" of {'/'.join(map(str, sorted(n)))}"
        rate = float(np.mean([x["summary"]["pass_rate"] for x in reps]))
        med = {k: [x["error_stats_mm"][k]["p50"] for x in reps] for k in ("mpjpe", "pa_mpjpe")}
        syn = [c for c in (synthesized_kept(r, row, s) for s in r.cfg["seeds"]) if c is not None]
        lines.append(
            f"| {row} | {kept} | {100 * rate:.1f} % | {np.mean(med['mpjpe']):.1f} ± {np.std(med['mpjpe']):.1f} "
            f"| {np.mean(med['pa_mpjpe']):.1f} ± {np.std(med['pa_mpjpe']):.1f} "
            f"| {', '.join(f'{k} of {t}' for k, t in syn) or '—'} |"
        )
    yard = _read(r.work / "eval" / "filter_yardstick.json")
    if yard:
        lines += [
            "",
            "The filter's own yardsticks (first seed; labels exact): what it keeps of the reference's real "
            "photos cropped as the generator frames its images (its ceiling), and, on each condition set, of "
            "row (b)'s render recipe and of holab photos of the very conditions (`world render --domain "
            "holab --poses`), in the generator's framing: whether the estimator can read those poses at all. "
            "The last column is of the synthesized grasps alone: what it keeps of their photos bounds what it "
            "can keep of any image of them, so a count near 0 there says the filter rejects novel grasps by "
            "their pose, whatever draws them. " + _estimator_sentence(r),
            "",
            "| Images | kept | pass rate | median MPJPE (mm) | median PA-MPJPE (mm) | kept of synthesized grasps |",
            "|---|---|---|---|---|---|",
        ]
        for name, y in yard.items():
            syn = y.get("synthesized_kept")
            lines.append(
                f"| {name} | {y['kept']} of {y['records']} | {100 * y['pass_rate']:.1f} % | "
                f"{y['median_mm']['mpjpe']:.1f} | {y['median_mm']['pa_mpjpe']:.1f} | "
                f"{f'{syn[0]} of {syn[1]}' if syn else '—'} |"
            )
    return lines + _view_angle_section(r)


def _estimator_sentence(r) -> str:
    """What the filter's estimator trained on (the report says it beside the filter's yardsticks)."""
    n = r.synthetic_photos
    if not n:
        return "The estimator trained on real train (holab_train) only, as the paper's."
    return (
        f"The estimator trained on real train (holab_train) and {n} holab photos of synthesized grasps "
        "made from their own seed (`hb.filter_estimator`; none of the condition sets' grasps): a deviation, "
        "so that it reads grasps holab's few styles never show (docs/micro.md)."
    )


def view_angle_of(record: dict) -> float:
    """Degrees the record's scene was turned by ``poses compose``'s novel view (Rx·Ry·Rz about the
    wrist; 0 for a record passed through unturned)."""
    from handsynth.poses.quaternions import rotation_angle_deg
    from handsynth.poses.views import euler_xyz

    angles = ((record.get("source") or {}).get("handbooster") or {}).get("compose", {}).get("angles_deg")
    if not angles:
        return 0.0
    return float(rotation_angle_deg(np.eye(3), euler_xyz(np.asarray(angles, np.float64))))


def _view_angle_section(r) -> list[str]:
    """The filter's keep rate by how far ``poses compose`` turned each `real` condition (first seed):
    renders of the conditions (labels exact) next to the rows that generated from them. An estimator
    trained on the real set's views rejects turned views it cannot read, whatever drew the image."""
    seed = r.cfg["seeds"][0]
    conds = r.conds("real", seed) / "metadata.jsonl"
    if not conds.exists():
        return []
    angle = {}
    for line in conds.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            angle[rec["id"]] = view_angle_of(rec)
    sets = {
        "renders of the real conditions (labels exact)": r.work
        / "eval"
        / "filter_yardstick"
        / "render_real_kept"
    }
    sets.update(
        {row: r.gen_dir(row, seed) for row in r.rows() if r.spec(row).get("conditions") == "real"
         and r.spec(row).get("filter", True) and r.spec(row).get("synthetic") != "render"}
    )  # fmt: skip
    th = None
    table = {}
    for name, folder in sets.items():
        rep = _read(folder / "filter_report.json")
        if not rep:
            continue
        th = th or rep["summary"]["thresholds_mm"]["mpjpe"]
        errs = [
            (angle.get(h["id"], angle.get(h["id"].rsplit("-", 1)[0])), h["mpjpe_mm"]) for h in rep["hands"]
        ]
        table[name] = [(a, e) for a, e in errs if a is not None]
    if not table:
        return []
    m = float(r.hb["views"]["max_deg"])  # bins scale with the range: half of it, all of it, 1.5x, more
    edges = [0.0, m / 2, m, 1.5 * m, 180.0]
    bins = list(zip(edges[:-1], edges[1:]))
    heads = [f"{lo:g}–{hi:g}°" if hi < 180 else f"≥ {lo:g}°" for lo, hi in bins]
    lines = [
        "",
        f"Kept by the MPJPE threshold ({th:.1f} mm) by how far `poses compose` turned the `real` condition "
        f"(novel views, ±{r.hb['views']['max_deg']:.0f}° per axis; seed {seed}; cell: kept share, median "
        "MPJPE, hands). The estimator's real photos show the real set's own views"
        + (
            " (its synthesized-grasp photos are turned as `poses compose` turns them):"
            if r.synthetic_photos
            else ":"
        ),
        "",
        "| Images | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(bins),
    ]
    for name, pairs in table.items():
        cells = []
        for lo, hi in bins:
            e = np.array([err for a, err in pairs if lo <= a < hi])
            cells.append(f"{np.mean(e <= th):.0%}, {np.median(e):.0f} mm, {len(e)}" if len(e) else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _steps_section(r, cell) -> list[str]:
    """Issue §7's "cost of fewer steps": a row that re-samples another row's model with its own sampler
    settings (same conditions, same filter, same downstream budget) next to that row, both over the
    seeds the re-sampling row was drawn at."""
    pairs = [
        (r.spec(k)["model"], k) for k in r.rows() if r.spec(k).get("generate") and r.spec(k).get("model")
    ]
    if not pairs:
        return [
            "",
            "## Sampling steps",
            "",
            "Row (k) (the same model and conditions sampled with 50 DDIM steps instead of 10, issue §7's cost "
            "of fewer steps) is not in this profile: add it to this work folder with `python "
            "benchmarks/micro/run.py --suite handbooster --profile full --override steps50 --work <this run's "
            "folder>` (~590 job-seconds on 2 cores).",
        ]
    jobs = r.timings.get("jobs", {})
    lines = [
        "",
        "## Sampling steps: the cost of fewer DDIM steps (same model and conditions)",
        "",
        "| Row | DDIM steps | seeds | generation s per set | kept by the filter | FID | "
        + " | ".join(f"{t.split('_')[0]} {k}" for t in TEST_SETS for k in TABLE5)
        + " |",
        "|" + "---|" * (6 + len(TEST_SETS) * len(TABLE5)),
    ]
    for base, row in pairs:
        seeds = r.row_seeds(row)
        data = collect(r, seeds)
        for name in (base, row):
            secs = [jobs[j] for j in (f"generate_{name}_seed{x}" for x in seeds) if j in jobs]
            cells = [
                cell(data["downstream"][t].get(name, {}).get(k, []), k) for t in TEST_SETS for k in TABLE5
            ]
            kept = (
                ", ".join("–" if n is None else str(n) for n in data["fid"].get(name, {}).get("n", [])) or "–"
            )
            lines.append(
                f"| {name} | {r.generate_options(name)['steps']} | {', '.join(map(str, seeds))} | "
                f"{cell(secs, 's')} | {kept} | {cell(data['fid'].get(name, {}).get('FID', []), 'FID')} | "
                + " | ".join(cells)
                + " |"
            )
    lines += [
        "",
        "Mean ± sd over the seeds named (a pair over the same seeds); descriptive (not a claim, no test). "
        f"Generation seconds are each set's own job ({r.hb['n_gen']} conditions, one CPU thread, beside "
        "the other job).",
    ]
    return lines


def _columns() -> list[str]:
    from handsynth.eval.recon_eval import HANDBOOSTER_COLUMNS

    return list(HANDBOOSTER_COLUMNS)


def _best_trivial(rows: dict) -> dict:
    """Per column, the better of the trivial rows (a claim's metric must beat the best constant)."""
    out = {}
    for col in _columns():
        vals = [v[col] for v in rows.values() if v.get(col) is not None]
        if vals:
            out[col] = max(vals) if col in HIGHER else min(vals)
    return out


def _short(g: dict) -> str:
    v = g.get("value")
    return f"{g['name']}: {'not measured' if v is None else f'{v:.2f}'} (needs ≥ {g.get('threshold')})"


def _mean(vals) -> float | None:
    vals = [v for v in vals or [] if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def write_report(r) -> Path:
    from handbooster_sheet import write_handbooster_sheet
    from report import _cell  # benchmarks/micro/report.py

    cfg = r.cfg
    profile = cfg["profile"]
    main = profile in ("full", "full+steps50")  # steps50 adds row (k) to the full run, nothing else
    data = collect(r)
    yard = _read(r.work / "eval" / "yardsticks.json")
    grasp_status = _read(r.work / "eval" / "grasp_status.json")
    claims, n_tests = judge(r, data, yard)
    hb = r.hb
    lines = [
        f"# Micro benchmark: HandBooster's Table 5 in the hand-object micro world — `{profile}` profile",
        "",
    ]
    if not main:
        lines += [
            "**Not the benchmark's result**: a smaller profile (fewer seeds, budgets and images); its numbers are NOT evidence.",
            "",
        ]
    lines += [
        f"Command: `python benchmarks/micro/run.py --suite handbooster --profile {profile.replace('+', ' --override ')}`. "
        f"Real train: holab (DexYCB-like, {hb['world']['holab_train']['n']} frames, 8 subjects, sequences of "
        f"{hb['world']['holab_train'].get('sequence_length', 1)}); tests: holab S1-like (2 unseen subjects, "
        f"{hb['world']['holab_test']['n']}) and howild (MOW-like, {hb['world']['howild_test']['n']}). "
        f"HandBooster at {hb['sample_size']}² (`{hb['config']}`{_model_overrides(hb)}, {hb['train']['steps']} "
        f"steps × batch {hb['train']['batch_size']}), DDIM {hb['generate']['steps']} steps "
        f"({hb['generate'].get('spacing', RELEASED_SPACING)} spacing), eta {hb['generate']['eta']}, CFG "
        f"{hb['generate']['guidance']}; {hb['n_gen']} conditions per set; filter `{hb['filter']}`; downstream "
        f"{cfg['downstream']['steps']} steps × batch {cfg['downstream']['batch_size']}, real:gen = 1:"
        f"{cfg['downstream']['synth_ratio']}; seeds {cfg['seeds']}.",
        "",
    ]
    out_dir = r.results
    stem = cfg.get("results_stem", "micro_handbooster")
    stem = stem if main else f"{stem}_{profile}"
    sheet = write_handbooster_sheet(r, out_dir / f"{stem}_sheet.png")
    if sheet is not None:
        lines += [
            f"![contact sheet]({sheet.name})",
            "",
            "*Contact sheet (seed 0, before the filter): rows (b)..(f) (and (k) when run) drew from the same `real` conditions "
            "(one condition per line: its normal and texture maps, then a holab photo of it, what a perfect synthesizer would draw); (g)..(i) from their own sets.*",
            "",
        ]
    lines += [
        "## Claims",
        "",
        "| Claim | Label | Why |",
        "|---|---|---|",
    ]
    for c in claims:
        lines.append(
            f"| {c.text} | **{c.label}** | {c.reason}{f' ({c.note})' if c.note and not c.failed_gates else ''} |"
        )
    lines += ["", f"{n_tests} measurable tests, Holm-corrected together (micro_stats.py rules).", ""]
    cols = _columns()
    for t in TEST_SETS:
        lines += [f"## Downstream ({t}): mean ± sd over seeds (mm; AUC, F in [0, 1])", ""]
        lines += ["| Row | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
        src = data["downstream"][t]
        for name, row in (yard.get("trivial", {}).get(t) or {}).items():
            lines.append(f"| Trivial: {name} | " + " | ".join(_cell([row.get(k)], k) for k in cols) + " |")
        for key in src:
            label = key if key != ORACLE else "Oracle: + more real (holab_oracle)"
            lines.append(f"| {label} | " + " | ".join(_cell(src[key].get(k, []), k) for k in cols) + " |")
        lines.append("")
    lines += [
        "## FID vs real train (world feature extractor, hand crops)",
        "",
        "Each set as its downstream run draws it (c..i after the filter). Paper: HandBooster 2.91 vs ObMan 8.52. "
        "FID grows as a set shrinks, and the filter leaves (c)..(i) far fewer images than the rendered set "
        "(b): the last column is (b)'s FID at each set's own size (mean of 5 random subsets per seed), what "
        "the FID claim compares with.",
        "",
        "| Set | FID | images per seed | rendered set (b) at this size |",
        "|---|---|---|---|",
    ]
    for name, row in data["fid"].items():
        n = "/".join("–" if x is None else str(x) for x in row["n"])
        same = row.get(FID_RENDER_SAME_N)
        lines.append(f"| {name} | {_cell(row['FID'], 'FID')} | {n} | {_cell(same, 'FID') if same else '—'} |")
    lines += _filter_section(r)
    lines += _steps_section(r, _cell)
    lines += ["", "## Condition creator", ""]
    if grasp_status:
        lines.append(
            f"- grasp-status vs the world's truth: precision {_fmt(grasp_status.get('precision'))}, recall "
            f"{_fmt(grasp_status.get('recall'))} ({grasp_status['n']} frames, {grasp_status['true_grasping']} grasping)."
        )
    v = yard.get("validation") or {}
    if v:
        rates = ", ".join(f"{k} {100 * x:.1f} %" for k, x in v.get("pass_rate", {}).items())
        lines.append(
            f"- grasp validation pass rates ({v.get('n')} grasps, {hb['grasp']['iters']} annealing steps): {rates}."
        )
    lines += ["", "## Gates", ""]
    for g in yard.get("gates", []):
        lines.append(f"- {g['name']}: {_fmt(g.get('value'))} (needs ≥ {g.get('threshold')}) — "
                     f"{'passed' if g.get('passed') else 'FAILED'}; {g.get('detail', '')}")  # fmt: skip
    timings = r.timings
    lines += ["", "## Wall time per stage (s)", "", "| Stage | s |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in (timings.get("stages") or {}).items()]
    if timings.get("total_wall_s"):
        lines.append(f"| **whole run (all invocations that did work)** | {timings['total_wall_s']:.0f} |")
    if timings.get("note"):
        lines += ["", timings["note"] + "."]
    lines.append("")
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{stem}.md"
    md.write_text("\n".join(lines))
    payload = {
        "profile": profile,
        "config": {k: cfg[k] for k in ("hb", "methods", "downstream", "recon", "seeds", "size")},
        "downstream": data["downstream"],
        "fid": data["fid"],
        "grasp_status": grasp_status,
        "validation": yard.get("validation"),
        "gates": yard.get("gates", []),
        "trivial": yard.get("trivial", {}),
        "claims": [
            {
                "id": c.claim_id,
                "text": c.text,
                "label": c.label,
                "reason": c.reason,
                "note": c.note,
                "metrics": [
                    {
                        "metric": t.metric,
                        "status": t.status,
                        "mean_diff": t.interval.mean,
                        "p_holm": t.p_holm,
                        "reason": t.reason,
                    }
                    for t in c.tests
                ],
            }
            for c in claims
        ],
        "timings": timings,
    }
    (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=float))
    return md


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _read(p: Path) -> dict:
    return json.loads(p.read_text()) if p.exists() else {}
