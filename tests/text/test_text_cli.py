"""``handsynth prompts | tag | caption`` on a dataset folder: records edited in place, errors before writes."""

from __future__ import annotations

from handsynth.cli import main
from handsynth.data.folder import metadata_path, read_dataset
from handsynth.text.pos import BuiltinTagger
from handsynth.text.tagging import hand_token_indices


def test_prompts_tag_caption_flow(dataset, capsys):
    assert main(["prompts", "--in", str(dataset), "--seed", "1"]) == 0
    recs = read_dataset(dataset)
    assert all(r.prompt for r in recs) and "mustard bottle" in recs[1].prompt
    capsys.readouterr()
    assert main(["prompts", "--in", str(dataset), "--seed", "2"]) == 0  # existing prompts are kept
    assert [r.prompt for r in read_dataset(dataset)] == [r.prompt for r in recs]
    assert "the other 4 records keep theirs (--overwrite" in capsys.readouterr().out
    assert main(["prompts", "--in", str(dataset), "--n", "5"]) == 2  # --n only counts printed prompts
    assert "--n counts printed prompts" in capsys.readouterr().err

    assert main(["tag", "--in", str(dataset), "--pos", "builtin"]) == 0
    out = capsys.readouterr().out
    assert "tagged 4 records with the builtin tagger" in out
    for r in read_dataset(dataset):
        assert r.extra["hand_token_indices"] == hand_token_indices(r.prompt, tagger=BuiltinTagger())
        assert r.extra["hand_token_indices"]

    assert main(["caption", "--in", str(dataset), "--backend", "template", "--cot"]) == 0
    recs = read_dataset(dataset)
    assert recs[1].prompt == "a person holding a mustard bottle in their left hand"
    chain = recs[1].source["caption_chain"]
    assert [s["step"] for s in chain["steps"]] == ["describe", "semantics", "compose"]
    assert recs[1].source["caption"]["text"] == "A person is holding a mustard bottle in their left hand."
    assert all("hand_token_indices" not in r.extra for r in recs)  # stale positions removed
    assert main(["caption", "--in", str(dataset), "--backend", "template", "--cot"]) == 0
    assert "skipped 4 already captioned" in capsys.readouterr().out
    # captioned again without the chain: the earlier chain no longer explains the caption and goes
    assert main(["caption", "--in", str(dataset), "--backend", "template", "--overwrite"]) == 0
    assert all("caption_chain" not in r.source and "caption" in r.source for r in read_dataset(dataset))


def test_prompts_print(capsys):
    assert main(["prompts", "--n", "3", "--seed", "5"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_user_errors_before_writing(tmp_path, dataset, record, write_records, capsys):
    before = metadata_path(dataset).read_bytes()
    assert main(["caption", "--in", str(dataset), "--backend", "transformers"]) == 2
    assert "needs --model" in capsys.readouterr().err
    assert main(["caption", "--in", str(dataset), "--backend", "openai"]) == 2
    assert main(["caption", "--in", str(tmp_path / "nope")]) == 2
    assert main(["tag", "--in", str(dataset), "--groups", "elbow"]) == 2
    assert metadata_path(dataset).read_bytes() == before
    noimg = tmp_path / "noimg"
    write_records(noimg, [record(0, image=False)])
    assert (
        main(
            [
                "caption",
                "--in",
                str(noimg),
                "--backend",
                "openai",
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
            ]
        )
        == 2
    )
    assert "no image file" in capsys.readouterr().err


def test_cot_from_the_records_own_verbose_caption(tmp_path, capsys):
    """``--backend record``: the record's ``caption`` is the description; CoT drops the environment."""
    out = tmp_path / "w"
    args = [
        "world",
        "render",
        "--domain",
        "wild",
        "--n",
        "3",
        "--size",
        "32",
        "--maps",
        "",
        "--out",
        str(out),
    ]
    assert main([*args, "--caption-style", "verbose", "--seed", "4"]) == 0
    before = read_dataset(out)
    assert main(["caption", "--in", str(out), "--backend", "record", "--cot", "--semantics", "rule"]) == 0
    for b, r in zip(before, read_dataset(out)):
        assert r.extra["caption"] == b.extra["caption"] == r.source["caption"]["text"]
        assert r.prompt and len(r.prompt.split()) < len(b.extra["caption"].split()) / 2
        assert "light" not in r.prompt and "background" not in r.prompt
    bare = tmp_path / "b"
    assert main([*args[:-1], str(bare), "--seed", "4"]) == 0
    assert main(["caption", "--in", str(bare), "--backend", "record", "--cot", "--semantics", "rule"]) == 2
    err = capsys.readouterr().err
    assert "no `caption` field" in err and "--caption-style verbose" in err
    assert "caption" not in read_dataset(bare)[0].source  # refused before anything was written


def test_prompts_on_an_empty_dataset_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metadata.jsonl").write_text("")
    assert main(["prompts", "--in", str(tmp_path / "empty")]) == 2
    assert "holds no records to give prompts to" in capsys.readouterr().err
