"""The `unime` command line (also `python -m unime`). `unime COMMAND --help` shows an example.

Exit codes: 0 done; 1 failed (the message says why); 2 bad usage; 3 done, but some inputs or rows
were skipped (they are listed: skipped.jsonl for encode, the report's "Rows left out" for eval).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

EXAMPLES = {
    "encode": """example:
  unime encode corpus.jsonl photos/ --model UniME-LLaVA-1.6-7B --out embeddings/ --shard-size 10000
  (corpus.jsonl: one {"id": ..., "text": ..., "image": ..., "instruction": ...} per line; photos/: every image
  below it, its path as id. Writes shard-00000.npy + shard-00000.ids.jsonl ..., manifest.json, skipped.jsonl;
  run it again after an interruption: finished shards are not recomputed.)
  torchrun --nproc_per_node 8 -m unime encode corpus.jsonl --model M --device cuda --out embeddings/
  (data-parallel: process r embeds shards r, r + 8, ...; across machines give torchrun --nnodes and a
  rendezvous, with --out on a shared file system)""",
    "index": """example:
  unime index embeddings/ --out photos.index --kind auto
  (builds a FAISS index from `unime encode`'s shards: exact below 50,000 vectors, IVF above; ivfpq compresses
  corpora whose vectors do not fit in memory)""",
    "search": """example:
  unime search photos.index --model UniME-LLaVA-1.6-7B --text "a dog on a beach" -k 5 --show results.png
  unime search photos.index --model UniME-LLaVA-1.6-7B --image query.jpg --instruction "Find a similar image."
  (the index refuses a model other than the one that embedded it)""",
    "eval": """examples:
  unime eval mmeb --model M --out runs/eval --data MMEB-eval --images MMEB-eval/images
  unime eval retrieval --model M --out runs/eval --name flickr30k --data flickr30k_test.jsonl --images flickr-images
  unime eval sugarcrepe --model M --out runs/eval --data sugar-crepe/data --images coco/val2017
  unime eval zero-shot --model M --out runs/eval --name fashion --data images_by_class/ --template "a photo of a {}."
  (writes runs/eval/results.md, results.json and charts/*.png; rerun to resume; finished datasets are kept)""",
    "train": """example:
  unime train stage2.yaml --model UniME-LLaVA-1.6-7B --data mmeb_train.jsonl --set max_steps=1000
  torchrun --nproc-per-node 8 -m unime train stage2.yaml --model M --data D --device cuda""",
    "demo": """example:
  unime demo --out unime-demo""",
}


def _parser(name: str, sub, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[name],
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model", required=required, help="checkpoint directory (or hub id)")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16 (default float32)")
    p.add_argument("--recipe", default=None,
                   help="how the checkpoint's release embeds: default, gme or unime_v2 (default: from the folder)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="inputs preprocessed together, and the most per forward pass (default 32)")
    p.add_argument("--max-batch-tokens", type=int, default=16384,
                   help="real tokens per forward pass, image tokens included (default 16384)")


def _load_model(args):
    import unime

    return unime.Model.from_pretrained(args.model, dtype=args.dtype, device=args.device, recipe=args.recipe)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _encode(args) -> int:
    from .shards import encode_to_shards, read_inputs

    if not args.inputs and not args.texts:
        raise SystemExit("unime encode: give .jsonl lists, images or folders, or --texts FILE")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # under torchrun: one process per GPU (or CPU worker), each embedding its own shards
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")  # only barriers go through it; vectors go to disk
        if args.device == "cuda":
            args.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    model = _load_model(args)
    key = json.dumps({"inputs": [os.path.abspath(s) for s in args.inputs], "texts": args.texts,
                      "instruction": args.instruction})
    records = read_inputs(args.inputs, args.texts)
    if args.instruction:
        records = (r if r.instruction else type(r)(r.id, r.text, r.image, args.instruction, r.error) for r in records)
    manifest = encode_to_shards(model, records, args.out, shard_size=args.shard_size, batch_size=args.batch_size,
                                max_batch_tokens=args.max_batch_tokens,
                                num_threads=args.num_threads,
                                # only when set: folders written without it keep resuming
                                **({"truncate": True} if args.truncate else {}),
                                fmt=args.format, dtype=args.out_dtype, inputs_key=key,
                                show_progress=False if args.quiet else None)
    if int(os.environ.get("RANK", "0")) != 0:
        return EXIT_OK  # rank 0 reports for the whole run
    print(f"unime encode: {manifest['count']} embeddings of dimension {manifest['dim']} in "
          f"{len(manifest['shards'])} shard(s) under {args.out}; {manifest['skipped']} skipped"
          + (f" (listed in {os.path.join(args.out, 'skipped.jsonl')})" if manifest["skipped"] else ""))
    # torchrun takes any other exit code for a crashed worker: distributed runs report skips in the summary.
    return EXIT_PARTIAL if manifest["skipped"] and world == 1 else EXIT_OK


def _index(args) -> int:
    from .index import Index

    index = Index.from_shards(args.shards, kind=args.kind)
    index.save(args.out)
    print(f"unime index: {len(index)} vectors ({index.kind}) saved to {args.out}")
    return EXIT_OK


def _search(args) -> int:
    from .index import Index

    if not args.text and not args.image:
        raise SystemExit("unime search: give --text, --image or both")
    model = _load_model(args)
    index = Index.load(args.index, model=model)
    hits = index.search(texts=[args.text] if args.text else None, images=[args.image] if args.image else None,
                        instruction=args.instruction, k=args.k)[0]
    if args.json:
        print(json.dumps([{"id": h.id, "score": h.score, "metadata": h.metadata} for h in hits], ensure_ascii=False))
    else:
        for rank, h in enumerate(hits, 1):
            print(f"{rank:3d}  {h.score:8.4f}  {h.id}" + (f"  {json.dumps(h.metadata)}" if h.metadata else ""))
    if args.show:
        from .search_grid import save_grid

        save_grid(args.show, query_text=args.text, query_image=args.image, hits=hits)
        print(f"unime search: wrote {args.show}")
    return EXIT_OK


def _eval(args) -> int:
    import unime

    model = _load_model(args)
    run = unime.eval.Evaluation(model, args.out, batch_size=args.batch_size, image_resolution=args.resolution,
                                resume=not args.restart, show_progress=False if args.quiet else None)
    if args.suite == "mmeb":
        run.mmeb(args.data, args.images, datasets=args.datasets)
    elif args.suite == "retrieval":
        run.retrieval(args.name or "retrieval", args.data, args.images, image_instruction=args.image_instruction,
                      text_instruction=args.text_instruction)
    elif args.suite == "sugarcrepe":
        run.sugarcrepe(args.data, args.images, subsets=args.datasets, image_instruction=args.image_instruction,
                       text_instruction=args.text_instruction)
    else:
        classnames = None
        if args.classnames:
            with open(args.classnames, encoding="utf-8") as f:
                classnames = [line.strip() for line in f if line.strip()]
        run.zero_shot(args.name or "zero-shot", args.data, args.images, classnames=classnames,
                      templates=args.template or ["a photo of a {}."], image_instruction=args.image_instruction,
                      text_instruction=args.text_instruction)
    print(run.report(charts=not args.no_charts))
    return EXIT_PARTIAL if run.errors else EXIT_OK


def _train(args: argparse.Namespace) -> int:
    import datetime

    import torch
    import torch.distributed as dist

    import unime
    from unime.train import TeacherEmbeddings, TrainerConfig

    config = TrainerConfig.load(args.config)
    overrides = dict(kv.split("=", 1) for kv in args.set or [])
    if overrides:
        typed = {}
        for key, value in overrides.items():
            if not hasattr(config, key):
                raise SystemExit(f"unime train: --set {key}: not a TrainerConfig field")
            current = getattr(config, key)
            typed[key] = type(current)(value) if isinstance(current, (int, float, str)) else value
        config = TrainerConfig.from_dict({**config.to_dict(), **typed})
    device = args.device
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        # Started by torchrun: one process per GPU (NCCL) or per CPU worker (gloo).
        use_cuda = torch.cuda.is_available() and device != "cpu"
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        dist.init_process_group("nccl" if use_cuda else "gloo",
                                timeout=datetime.timedelta(seconds=config.collective_timeout))
    model = unime.Model.from_pretrained(args.model, dtype=args.dtype, device=device, recipe=args.recipe)
    teacher = TeacherEmbeddings.from_file(args.teacher) if args.teacher else None
    trainer = unime.Trainer(model, config=config, teacher=teacher)
    trainer.fit(args.data, progress=not args.quiet)
    if trainer.rank == 0 and config.output_dir:
        trainer.save_adapter(os.path.join(config.output_dir, "adapter"))
        if args.merge:
            trainer.save_merged(os.path.join(config.output_dir, "merged"))
    if dist.is_initialized():
        dist.destroy_process_group()
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unime", description="Universal multimodal embeddings (UniME) on a C++ core",
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = _parser("encode", sub, "embed a corpus (jsonl lists, images, folders, a text file) into shards on disk")
    p.add_argument("inputs", nargs="*", help=".jsonl lists, image files or folders of images")
    p.add_argument("--texts", help="a text file, one text per line")
    p.add_argument("--out", required=True, help="output folder (shards, manifest.json, skipped.jsonl)")
    p.add_argument("--instruction", help="instruction for inputs that have none")
    p.add_argument("--shard-size", type=int, default=10000, help="embeddings per shard (default 10000)")
    p.add_argument("--format", choices=["npy", "safetensors"], default="npy", help="shard format (default npy)")
    p.add_argument("--out-dtype", choices=["float32", "float16"], default="float32", help="stored dtype")
    p.add_argument("--truncate", action="store_true",
                   help="cut inputs over the token limit at the end (as GME and UniME-V2 do) instead of skipping them")
    p.add_argument("--num-threads", type=_non_negative_int, default=0,
                   help="threads for decoding and preprocessing (default 0: the cores, shared among the "
                        "processes torchrun starts on this machine; unime.images.usable_cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_args(p)

    p = _parser("index", sub, "build a search index from `unime encode` shards")
    p.add_argument("shards", help="the folder `unime encode` wrote (or its manifest.json)")
    p.add_argument("--out", required=True, help="index folder to write")
    p.add_argument("--kind", default="auto", choices=["auto", "flat", "ivf", "hnsw", "ivfpq"], help="index type")

    p = _parser("search", sub, "search an index by text, image or image+text")
    p.add_argument("index", help="index folder (`unime index` or unime.Index.save)")
    p.add_argument("--text", help="query text")
    p.add_argument("--image", help="query image")
    p.add_argument("--instruction", help="the task's instruction for the query")
    p.add_argument("-k", type=int, default=10, help="results (default 10)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--show", metavar="PNG", help="write a grid of the query and its results")
    _add_model_args(p)

    p = _parser("eval", sub, "evaluate on MMEB, image-text retrieval, SugarCrepe or zero-shot classification")
    p.add_argument("suite", choices=["mmeb", "retrieval", "sugarcrepe", "zero-shot"])
    p.add_argument("--out", required=True, help="run folder: results.md, results.json, charts/ (resumed if present)")
    p.add_argument("--data", required=True, help="dataset folder or file in the suite's official format")
    p.add_argument("--images", help="image folder the rows' paths are relative to")
    p.add_argument("--datasets", nargs="+", help="MMEB datasets / SugarCrepe subsets (default: all found)")
    p.add_argument("--name", help="dataset name for retrieval / zero-shot")
    p.add_argument("--classnames", help="zero-shot: file with one class name per line (default: the labels)")
    p.add_argument("--template", action="append", help="zero-shot prompt template with {} (repeatable)")
    p.add_argument("--image-instruction", help="instruction for image inputs (retrieval, SugarCrepe, zero-shot)")
    p.add_argument("--text-instruction", help="instruction for text inputs")
    p.add_argument("--resolution", help="resize images first: low (336), mid (672), high (1344)")
    p.add_argument("--restart", action="store_true", help="recompute finished datasets instead of resuming")
    p.add_argument("--no-charts", action="store_true", help="skip the charts")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_model_args(p)

    p = _parser("train", sub, "train with a TrainerConfig file (JSON or YAML)")
    p.add_argument("config", help="TrainerConfig file (.json / .yaml): stage, LoRA, optimiser, output_dir, ...")
    p.add_argument("--model", required=True, help="checkpoint directory to start from")
    p.add_argument("--data", required=True, help="training data (.jsonl / .json) for the stage")
    p.add_argument("--teacher", help="stage 1: teacher embeddings (.safetensors / .npy keyed by example id)")
    p.add_argument("--dtype", default="float32", help="weights' dtype (float32, bfloat16, float16)")
    p.add_argument("--recipe", default=None,
                   help="how the checkpoint's release embeds: default, gme or unime_v2 (default: from the folder)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: each rank its LOCAL_RANK GPU)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field")
    p.add_argument("--merge", action="store_true", help="also write the merged model to output_dir/merged")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = _parser("demo", sub, "UniME's two stages on real data (CPU, offline, about 5 minutes)")
    p.add_argument("--out", default="unime-demo", help="where the pictures and numbers go (default ./unime-demo)")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run (for tests)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"encode": _encode, "index": _index, "search": _search, "eval": _eval, "train": _train}
    try:
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args.out, quick=args.quick)
        return commands[args.command](args)
    except (FileNotFoundError, ValueError, TypeError, RuntimeError, OSError) as e:
        print(f"unime {args.command}: error: {e}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
