"""Record format and dataset folders: validation names the place, writes are atomic and resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handsynth.data import DatasetWriter, LocalCrop, RecordError, Sample, read_dataset, write_metadata
from handsynth.errors import UserError


def make_sample(i: int, sides=("right",)) -> Sample:
    hands = []
    for k, side in enumerate(sides):
        hands.append(
            {
                "side": side,
                "model": "openhand",
                "global_orient": [0.1, 0.2, 0.3],
                "hand_pose": [0.0] * 45,
                "betas": [0.0] * 10,
                "transl": [0.05 * k, 0.0, 0.5],
                "joints_3d": [[0.01 * j, 0.0, 0.5] for j in range(21)],
                "joints_2d": [[100.0 + j, 120.0 + k * 50] for j in range(21)],
                "bbox": [90.0 + 60 * k, 100.0, 40.0, 50.0],
            }
        )
    d = {
        "id": f"{i:06d}",
        "file_name": f"images/{i:06d}.png",
        "width": 256,
        "height": 256,
        "camera": {"K": [[300.0, 0, 128], [0, 300.0, 128], [0, 0, 1]]},
        "hands": hands,
        "prompt": "a person holding a cup",
        "conditions": {"mesh": f"conditions/mesh/{i:06d}.png"},
        "local": {"box": [80.0, 90.0, 100.0], "size": 256, "conditions": {}},
        "source": {"generator": "test"},
        "hand_token_indices": [3],
    }
    return Sample.from_dict(d)


def test_round_trip_keeps_unknown_fields():
    s = make_sample(1, ("right", "left"))
    d = s.to_dict()
    assert d["hand_token_indices"] == [3]
    again = Sample.from_dict(json.loads(json.dumps(d)))
    assert again.to_dict() == d
    assert again.union_bbox() == [90.0, 100.0, 100.0, 50.0]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("width"), "width"),
        (lambda d: d["hands"][0].update(hand_pose=[0.0] * 44), "hands[0].hand_pose"),
        (lambda d: d["hands"][0].update(side="middle"), "hands[0].side"),
        (lambda d: d["hands"][0]["joints_3d"][4].__setitem__(1, float("nan")), "hands[0].joints_3d[4][1]"),
        (lambda d: d["camera"]["K"][2].__setitem__(2, 0.0), "camera.K"),
        (lambda d: d.update(file_name="../outside.png"), "file_name"),
        (lambda d: d["hands"][0].update(bbox=[0, 0, 0, 5]), "hands[0].bbox"),
        (lambda d: d["local"].update(size=0), "local.size"),
    ],
)
def test_bad_record_names_file_line_and_field(tmp_path, mutate, field):
    good = make_sample(1).to_dict()
    bad = make_sample(2).to_dict()
    mutate(bad)
    (tmp_path / "metadata.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(RecordError) as err:
        read_dataset(tmp_path)
    msg = str(err.value)
    assert "metadata.jsonl:2" in msg and f"'{field}'" in msg


def test_invalid_json_line_is_named(tmp_path):
    (tmp_path / "metadata.jsonl").write_text(json.dumps(make_sample(1).to_dict()) + "\n{oops\n")
    with pytest.raises(RecordError, match=r"metadata.jsonl:2: not valid JSON"):
        read_dataset(tmp_path)


def test_writer_resumes_without_duplicates_and_repairs_torn_line(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    w = DatasetWriter(tmp_path, config={"method": "x"})
    for i in range(3):
        w.write(make_sample(i), {f"images/{i:06d}.png": img})
    # a killed run leaves a torn last line
    with open(tmp_path / "metadata.jsonl", "a") as f:
        f.write('{"id": "000003", "wid')
    assert [s.id for s in read_dataset(tmp_path)] == ["000000", "000001", "000002"]
    w2 = DatasetWriter(tmp_path, config={"method": "x"})
    assert len(w2) == 3 and w2.has("000002") and not w2.has("000003")
    with pytest.raises(UserError, match="already in the dataset"):
        w2.write(make_sample(1))
    w2.write(make_sample(3), {"images/000003.png": img})
    assert [s.id for s in read_dataset(tmp_path)] == ["000000", "000001", "000002", "000003"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_writer_refuses_mixed_configuration(tmp_path):
    DatasetWriter(tmp_path, config={"method": "a", "steps": 20})
    with pytest.raises(UserError, match="steps"):
        DatasetWriter(tmp_path, config={"method": "a", "steps": 30})
    DatasetWriter(tmp_path, config={"method": "a", "steps": 30}, overwrite=True)


def test_overwrite_restarts_the_folder_instead_of_keeping_the_old_records(tmp_path):
    w = DatasetWriter(tmp_path, config={"seed": 0})
    for i in (0, 1):
        w.write(make_sample(i))
    w = DatasetWriter(tmp_path, config={"seed": 5}, overwrite=True)
    assert len(w) == 0 and not w.has("000000")  # a rerun writes every record of the new settings again
    w.write(make_sample(2))
    assert [s.id for s in read_dataset(tmp_path)] == ["000002"]


def test_uint16_maps_stay_16_bit(tmp_path):
    from PIL import Image

    depth = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    w = DatasetWriter(tmp_path)
    w.write(make_sample(0), {"conditions/depth/000000.png": depth})
    back = np.array(Image.open(tmp_path / "conditions/depth/000000.png"))
    assert back.dtype in (np.uint16, np.int32) and np.array_equal(back.astype(np.uint16), depth)


def test_write_metadata_replaces_atomically(tmp_path):
    samples = [make_sample(i) for i in range(2)]
    write_metadata(tmp_path, samples)
    samples[0].prompt = "changed"
    write_metadata(tmp_path, samples)
    assert read_dataset(tmp_path)[0].prompt == "changed"


def test_local_crop_maps_back():
    crop = LocalCrop(box=[50.0, -20.0, 200.0], size=512)
    xy = np.array([[60.0, 0.0], [250.0, 180.0]])
    uv = crop.to_local(xy)
    assert np.allclose(uv[0], [10 * 512 / 200, 20 * 512 / 200])
    assert np.allclose(crop.to_global(uv), xy)


def test_hf_imagefolder_reads_written_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    w = DatasetWriter(tmp_path)
    for i in range(3):
        images = {f"images/{i:06d}.png": np.full((8, 8, 3), i * 40, np.uint8)}
        w.write(make_sample(i), {**images, f"conditions/mesh/{i:06d}.png": np.zeros((8, 8, 3), np.uint8)})
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path), split="train")
    assert len(ds) == 3
    row = sorted(ds, key=lambda r: r["id"])[1]
    assert row["id"] == "000001" and row["prompt"] == "a person holding a cup"
    assert np.asarray(row["image"]).mean() == 40


def test_webdataset_shards_hold_every_sample(tmp_path):
    from handsynth.data.shards import write_shards

    w = DatasetWriter(tmp_path / "ds")
    for i in range(5):
        s = make_sample(i)
        w.write(
            s,
            {
                s.file_name: np.full((4, 4, 3), i, np.uint8),
                s.conditions["mesh"]: np.zeros((4, 4, 3), np.uint8),
            },
        )
    shards = write_shards(tmp_path / "ds", tmp_path / "shards", samples_per_shard=2)
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    wds = pytest.importorskip("webdataset")
    rows = list(wds.WebDataset([str(p) for p in shards], shardshuffle=False))
    assert [r["__key__"] for r in rows] == [f"{i:06d}" for i in range(5)]
    assert set(rows[3]) >= {"json", "image.png", "mesh.png"}
    assert json.loads(rows[3]["json"])["id"] == "000003"


def test_webdataset_shards_follow_a_new_shard_size_and_rewritten_records(tmp_path):
    """Shards kept from an earlier export must hold what they would be written with: after --shards 2
    then 4, every sample is in exactly one shard; records rewritten under the same ids are re-packed."""
    import tarfile

    from handsynth.data.shards import write_shards

    def write(prompt: str) -> None:
        w = DatasetWriter(tmp_path / "ds", overwrite=True)
        for i in range(6):
            s = make_sample(i)
            s.prompt = prompt
            w.write(
                s,
                {
                    s.file_name: np.full((4, 4, 3), i, np.uint8),
                    s.conditions["mesh"]: np.zeros((4, 4, 3), np.uint8),
                },
            )

    def packed(shards) -> list[tuple[str, str]]:
        out = []
        for p in shards:
            with tarfile.open(p) as tar:
                out += [
                    (m.name, json.loads(tar.extractfile(m).read())["prompt"])
                    for m in tar.getmembers()
                    if m.name.endswith(".json")
                ]
        return out

    write("a cup")
    write_shards(tmp_path / "ds", tmp_path / "shards", samples_per_shard=2)
    shards = write_shards(tmp_path / "ds", tmp_path / "shards", samples_per_shard=4)
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-000000.tar", "shard-000001.tar"]
    assert [name for name, _ in packed(shards)] == [f"{i:06d}.json" for i in range(6)]
    write("a ball")  # the folder restarted: the same ids, other records
    shards = write_shards(tmp_path / "ds", tmp_path / "shards", samples_per_shard=4)
    assert {prompt for _, prompt in packed(shards)} == {"a ball"}


def test_hf_imagefolder_decodes_condition_maps_as_images(tmp_path):
    """Condition maps arrive as Image columns (conditioning_image for diffusers' train_controlnet.py,
    one column per map), for a generated folder and for render output that has no file_name."""
    datasets = pytest.importorskip("datasets")
    gen, cond = DatasetWriter(tmp_path / "gen"), DatasetWriter(tmp_path / "cond")
    for i in range(2):
        s = make_sample(i)
        files = {
            s.file_name: np.full((8, 8, 3), 10, np.uint8),
            s.conditions["mesh"]: np.full((8, 8, 3), 200, np.uint8),
        }
        gen.write(s, files)
        bare = make_sample(i)
        bare.file_name = None
        cond.write(bare, {bare.conditions["mesh"]: np.full((8, 8, 3), 200, np.uint8)})
    for folder, has_image in ((tmp_path / "gen", True), (tmp_path / "cond", False)):
        ds = datasets.load_dataset("imagefolder", data_dir=str(folder), split="train")
        assert isinstance(ds.features["conditioning_image"], datasets.Image)
        assert isinstance(ds.features["mesh"], datasets.Image)
        assert ("image" in ds.features) == has_image
        assert np.asarray(ds[0]["conditioning_image"]).mean() == 200
    # the derived columns are not carried as unknown fields: a round trip writes them once, fresh
    rec = read_dataset(tmp_path / "gen")[0]
    assert not any(k.endswith("_file_name") for k in rec.extra)
    rec.conditions = {"normal": "conditions/normal/x.png"}
    d = rec.to_dict()
    assert d["conditioning_image_file_name"] == "conditions/normal/x.png" and "mesh_file_name" not in d
