"""The `unime` command line (also `python -m unime`).

    unime demo [--out DIR] [--quick]                     UniME's two stages on real data, on a CPU
    unime train CONFIG --model DIR --data PATH [...]     a training run (under torchrun for several processes)
"""

from __future__ import annotations

import argparse
import os
import sys


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
    model = unime.Model.from_pretrained(args.model, dtype=args.dtype, device=device)
    teacher = TeacherEmbeddings.from_file(args.teacher) if args.teacher else None
    trainer = unime.Trainer(model, config=config, teacher=teacher)
    trainer.fit(args.data, progress=not args.quiet)
    if trainer.rank == 0 and config.output_dir:
        trainer.save_adapter(os.path.join(config.output_dir, "adapter"))
        if args.merge:
            trainer.save_merged(os.path.join(config.output_dir, "merged"))
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unime", description="Universal multimodal embeddings (UniME) on a C++ core")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="UniME's two stages on real data (CPU, offline, about 10 minutes)")
    demo.add_argument("--out", default="unime-demo", help="where the pictures and numbers go (default ./unime-demo)")
    demo.add_argument("--quick", action="store_true", help="a smaller, faster run (for tests)")

    train = sub.add_parser("train", help="train with a TrainerConfig file (JSON or YAML)")
    train.add_argument("config", help="TrainerConfig file (.json / .yaml): stage, LoRA, optimiser, output_dir, ...")
    train.add_argument("--model", required=True, help="checkpoint directory to start from")
    train.add_argument("--data", required=True, help="training data (.jsonl / .json) for the stage")
    train.add_argument("--teacher", help="stage 1: teacher embeddings (.safetensors / .npy keyed by example id)")
    train.add_argument("--dtype", default="float32", help="weights' dtype (float32, bfloat16, float16)")
    train.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: each rank its LOCAL_RANK GPU)")
    train.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field")
    train.add_argument("--merge", action="store_true", help="also write the merged model to output_dir/merged")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args)
    from .demo import run_demo

    return run_demo(args.out, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
