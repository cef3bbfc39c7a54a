"""``handsynth tag | caption | prompts``: the text stage's commands (they edit a dataset folder in place)."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from handsynth import cli_args
from handsynth.errors import UserError


def _dataset_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--in", dest="input", required=True, help="dataset folder (metadata.jsonl) or a .jsonl file"
    )


def register(sub: argparse._SubParsersAction) -> None:
    from handsynth.text.captioner import BACKENDS, DEFAULT_QUESTION
    from handsynth.text.pos import BACKENDS as POS_BACKENDS
    from handsynth.text.tagging import PRESETS, WORD_GROUPS

    p = sub.add_parser("tag", help="add hand_token_indices (CLIP positions of hand-related words) to records")
    _dataset_arg(p)
    p.add_argument(
        "--rules",
        choices=sorted(PRESETS),
        default="attentionhand",
        help="attentionhand: VBG + hand(s) (paper); released: + finger(s)/gesture, 'hand' substring",
    )
    p.add_argument(
        "--groups", default="", help=f"extra word groups, comma-separated: {','.join(WORD_GROUPS)}"
    )
    p.add_argument("--words", default="", help="extra words to select, comma-separated")
    p.add_argument("--pos", choices=POS_BACKENDS, default="auto", help="part-of-speech back-end")
    p.add_argument(
        "--tokenizer", default=None, help="model folder/hub id whose tokenizer/ to use (default: SD-1.x CLIP)"
    )
    p.add_argument(
        "--show", type=cli_args.count, default=20, help="rows of the prompt -> selected words table (0: none)"
    )
    p.set_defaults(func=_tag)

    p = sub.add_parser(
        "caption", help="caption records (template | record | transformers | openai), optionally with CoT"
    )
    _dataset_arg(p)
    p.add_argument("--backend", choices=BACKENDS, default="template")
    p.add_argument(
        "--model", default=None, help="transformers: model folder or hub id; openai: served model name"
    )
    p.add_argument("--question", default=DEFAULT_QUESTION)
    p.add_argument(
        "--cot",
        action="store_true",
        help="SesaHand chain: describe -> semantics JSON -> human-centric prompt",
    )
    p.add_argument(
        "--semantics",
        choices=("auto", "model", "rule"),
        default="auto",
        help="CoT steps 2-3 by the model or by the offline rules (auto: model when it can chat)",
    )
    p.add_argument("--overwrite", action="store_true", help="caption records that already have a caption")
    p.add_argument("--batch-size", type=cli_args.positive_int, default=8)
    p.add_argument("--max-new-tokens", type=cli_args.positive_int, default=None)
    p.add_argument("--device", default="auto", help="transformers: cpu, cuda, cuda:1 ... (auto)")
    p.add_argument("--dtype", default="auto", help="transformers: auto, float32, float16, bfloat16")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--base-url", default=None, help="openai: server URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="openai: environment variable with the key"
    )
    p.add_argument("--concurrency", type=cli_args.positive_int, default=4)
    p.add_argument("--timeout", type=cli_args.positive, default=120.0, help="openai: seconds per request")
    p.add_argument(
        "--retries", type=cli_args.count, default=3, help="openai: retries per request (exponential back-off)"
    )
    p.add_argument(
        "--max-image-side",
        type=cli_args.image_side,
        default=None,
        help="openai: downscale images to this longer side",
    )
    p.add_argument(
        "--save-interval",
        type=cli_args.non_negative,
        default=30.0,
        help="seconds between checkpoints of metadata.jsonl",
    )
    p.set_defaults(func=_caption)

    p = sub.add_parser("prompts", help="fill empty prompts of a dataset, or print generated prompts")
    p.add_argument(
        "--in", dest="input", default=None, help="dataset folder: fill records that have no prompt"
    )
    p.add_argument("--seed", type=cli_args.seed, default=0)
    p.add_argument(
        "--n",
        type=cli_args.positive_int,
        default=None,
        help="without --in: how many prompts to print (default 10)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing prompts too")
    p.set_defaults(func=_prompts)


def _table(rows: list[tuple[str, str]], limit: int) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table("prompt", "selected words -> CLIP positions", show_lines=False)
    for a, b in rows[:limit]:
        t.add_row(a, b)
    Console().print(t)
    if len(rows) > limit:
        print(f"... {len(rows) - limit} more")


def _tag(args: argparse.Namespace) -> int:
    from handsynth.text.caption_run import tag_dataset
    from handsynth.text.pos import get_pos_tagger
    from handsynth.text.tagging import PRESETS, WORD_GROUPS
    from handsynth.text.tokenizer import clip_tokenizer

    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
    bad = [g for g in groups if g not in WORD_GROUPS]
    if bad:
        raise UserError(f"--groups {','.join(bad)} unknown; choose from {','.join(WORD_GROUPS)}")
    rules = PRESETS[args.rules]
    rules = replace(
        rules,
        groups=tuple(dict.fromkeys(rules.groups + groups)),
        words=tuple(w.strip() for w in args.words.split(",") if w.strip()),
    )
    tagger = get_pos_tagger(args.pos)
    tok = clip_tokenizer(args.tokenizer)
    results = tag_dataset(args.input, tok, rules, tagger)
    rows = [(s.prompt, ", ".join(f"{w.word}{w.positions}" for w in r.words) or "-") for s, r in results]
    if args.show:
        _table(rows, args.show)
    empty = sum(1 for _, r in results if not r.positions)
    print(f"tagged {len(results)} records with the {tagger.name} tagger; {empty} have no hand-related token")
    return 0


def _caption(args: argparse.Namespace) -> int:
    from handsynth.text.backends import make_backend
    from handsynth.text.caption_run import caption_dataset

    if args.backend != "openai" and args.base_url:
        raise UserError("--base-url is only used with --backend openai")
    if args.backend in ("template", "record") and args.semantics == "model":
        raise UserError(
            "--semantics model needs a model back-end (transformers or openai); use --semantics rule"
        )
    opts = dict(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        trust_remote_code=args.trust_remote_code,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        concurrency=args.concurrency,
        timeout=args.timeout,
        retries=args.retries,
        max_image_side=args.max_image_side,
    )
    from handsynth.data.folder import metadata_path

    if not metadata_path(args.input).exists():
        raise UserError(f"{metadata_path(args.input)} does not exist: pass a dataset folder with --in")
    backend = make_backend(args.backend, **opts)
    rep = caption_dataset(
        args.input,
        backend,
        question=args.question,
        cot=args.cot,
        semantics=args.semantics,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        save_interval=args.save_interval,
    )
    print(
        f"captioned {rep.captioned}, skipped {rep.skipped} already captioned, failed {len(rep.failed)} "
        f"(of {rep.total}) with {backend.name}:{backend.model}"
    )
    if rep.failed:
        print(
            f"failed records keep what they had (no caption, or their previous one with --overwrite); rerun "
            f"the same command to retry them (first: {rep.failed[0]})"
        )
        return 1
    return 0


def _prompts(args: argparse.Namespace) -> int:
    from handsynth.text.caption_run import fill_prompts
    from handsynth.text.prompts import PromptGenerator

    if args.input is None:
        for p in PromptGenerator(args.seed)(args.n or 10):
            print(p)
        return 0
    if args.n is not None:
        raise UserError("--n counts printed prompts without --in; with --in every record gets one prompt")
    if not os.path.exists(args.input):
        raise UserError(f"--in {args.input} does not exist")
    n, total = fill_prompts(args.input, args.seed, args.overwrite)
    if not total:
        raise UserError(f"--in {args.input} holds no records to give prompts to")
    kept = f"; the other {total - n} records keep theirs (--overwrite replaces them)" if n < total else ""
    print(f"wrote {n} generated prompts (seed {args.seed}){kept}")
    return 0
