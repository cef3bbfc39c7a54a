"""The plan: seeds, ids, the split over processes, prompts and prompt checks (no model needed)."""

from __future__ import annotations

import json

import pytest
import torch

from handsynth.data import read_dataset
from handsynth.errors import UserError
from handsynth.generate.inputs import assign_prompts, check_prompts, load_inputs
from handsynth.generate.plan import batches, build_plan, item_seed, shard_for_rank
from handsynth.methods.sampler import paste_local


@pytest.fixture()
def samples(poses_dir):
    return read_dataset(poses_dir)


def test_seeds_depend_on_sample_and_prompt_only(samples):
    plan = build_plan(samples, 3, global_seed=7)
    reversed_plan = build_plan(samples[::-1], 3, global_seed=7)
    by_id = {it.out_id: it.seed for it in reversed_plan}
    assert all(by_id[it.out_id] == it.seed for it in plan)  # order does not matter
    assert len({it.seed for it in plan}) == len(plan)  # every image its own noise
    assert item_seed(8, samples[0].id, 0) != item_seed(7, samples[0].id, 0)
    assert [it.out_id for it in plan[:3]] == [f"{samples[0].id}_{k}" for k in range(3)]
    assert [it.out_id for it in build_plan(samples, 1, 7)] == [s.id for s in samples]


@pytest.mark.parametrize("world", [1, 2, 3, 5, 8])
def test_split_has_no_overlap_and_no_gap(samples, world):
    plan = build_plan(samples, 3, 0)  # 12 items
    parts = [shard_for_rank(plan, r, world) for r in range(world)]
    ids = [it.out_id for p in parts for it in p]
    assert sorted(ids) == sorted(it.out_id for it in plan)
    assert len(ids) == len(set(ids))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError):
        shard_for_rank(plan, world, world)


def test_batches_cover_in_order(samples):
    plan = build_plan(samples, 2, 0)
    got = batches(plan, 3)
    assert [len(b) for b in got] == [3, 3, 2]
    assert [it for b in got for it in b] == plan


def test_prompt_sources(samples, tmp_path):
    plan = build_plan(samples, 2, 0)
    assert assign_prompts(plan, "auto", 0) == "records"  # every record has a prompt
    assert all(it.prompt == it.sample.prompt for it in plan)
    f = tmp_path / "prompts.txt"
    f.write_text("first prompt\n\nsecond prompt\nthird prompt\n")
    assert assign_prompts(plan, "auto", 0, f) == "file"
    assert [it.prompt for it in plan[:4]] == ["first prompt", "second prompt", "third prompt", "first prompt"]
    assert assign_prompts(plan, "generator", 0) == "generator"
    first = [it.prompt for it in plan]
    assign_prompts(plan, "generator", 0)
    assert [it.prompt for it in plan] == first  # seeded
    assert first[0] != first[1]  # K prompts of one pose differ (the paper's Fig. 11a)
    with pytest.raises(UserError, match="--prompts"):
        assign_prompts(plan, "nope", 0)


def test_long_prompt_names_the_record(samples):
    from handsynth.text.tokenizer import clip_tokenizer

    tok = clip_tokenizer()
    plan = build_plan(samples, 1, 0)
    assign_prompts(plan, "records", 0)
    check_prompts(plan, tok)
    hand = plan[1].hand_token_indices
    ids = tok(plan[1].prompt.lower()).input_ids
    assert hand and any(tok.convert_ids_to_tokens(ids[i]).startswith("hand") for i in hand)
    plan[2].prompt = "a hand " * 40
    with pytest.raises(UserError, match=f"record {plan[2].sample.id} .*more than the 77"):
        check_prompts(plan, tok)


def test_bad_inputs_name_the_record(poses_dir, tmp_path):
    lines = (poses_dir / "metadata.jsonl").read_text().splitlines()
    rec = json.loads(lines[2])
    rec["hands"][0]["joints_3d"][3][1] = float("nan")
    bad = tmp_path / "nan.jsonl"
    bad.write_text("\n".join([*lines[:2], json.dumps(rec), *lines[3:]]) + "\n")
    with pytest.raises(UserError, match=f"id {rec['id']}.*joints_3d.*finite"):
        load_inputs(bad, ("mesh",), False)
    # A condition file that is not there (paths resolve against the jsonl's folder).
    missing = poses_dir / "missing.jsonl"
    rec = json.loads(lines[1])
    rec["conditions"]["mesh"] = "conditions/mesh/nowhere.png"
    missing.write_text("\n".join([lines[0], json.dumps(rec)]) + "\n")
    try:
        with pytest.raises(
            UserError, match=f"record {rec['id']}: condition file .*nowhere.png does not exist"
        ):
            load_inputs(missing, ("mesh",), False)
    finally:
        missing.unlink()
    # No record has the map: the poses are rendered instead (no error here).
    assert load_inputs(poses_dir, ("normal",), False).render


def test_paste_local_blends_only_inside_the_box():
    g = torch.zeros(1, 4, 8, 8)
    loc = torch.ones(1, 4, 8, 8)
    out = paste_local(g, loc, [[16.0, 8.0, 32.0]], scale=8, weight=0.5)  # latent box x 2..6, y 1..5
    assert torch.allclose(out[0, :, 1:5, 2:6], torch.full((4, 4, 4), 0.5))
    mask = torch.ones(8, 8, dtype=torch.bool)
    mask[1:5, 2:6] = False
    assert out[0, :, mask].abs().max() == 0
    # A box hanging over the border is clipped, not wrapped.
    out = paste_local(g, loc, [[-16.0, 48.0, 32.0]], scale=8, weight=1.0)
    assert out[0, 0].sum() == 2 * 2 and out[0, 0, 6:8, 0:2].min() == 1
