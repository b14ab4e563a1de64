"""One rank of a torch.distributed (gloo) training run for test_distributed.py, or the whole run on one
process:

    python dist_run.py CHECKPOINT OUT STAGE --rank R --world W --port P [--kill-at N] [--timeout S] [--resume]

Trains STAGE ("distill" or "instruct", GradCache on) for 10 steps on 32 examples with a global batch
of 8, a checkpoint every 2 steps under OUT/run; rank 0 writes OUT/adapters.safetensors, and each rank
OUT/error-rank<R>.txt when training fails. --kill-at / --hang-at N: SIGKILL / SIGSTOP this rank after step N.
"""

import argparse
import datetime
import os
import signal
import sys
import traceback

sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import unime  # noqa: E402
from trainer_fixtures import distill_examples, instruct_examples, teacher_table  # noqa: E402
from unime.train import TeacherEmbeddings  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("stage")
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--world", type=int, default=1)
    p.add_argument("--port", type=int, default=29500)
    p.add_argument("--kill-at", type=int, default=0)
    p.add_argument("--hang-at", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)  # every run the same arithmetic, whatever the number of processes
    if args.world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=args.rank,
                                world_size=args.world, timeout=datetime.timedelta(seconds=args.timeout))
    model = unime.Model.from_pretrained(args.checkpoint)
    config = dict(lora_r=4, lora_alpha=8, lora_dropout=0.0, batch_size=8, chunk_size=2, max_steps=10,
                  learning_rate=3e-3, warmup_steps=2, hard_negatives=3, seed=3, save_every=2, keep_last=3,
                  collective_timeout=args.timeout, output_dir=os.path.join(args.out, "run"))
    if args.stage == "distill":
        data = distill_examples(32)
        teacher = TeacherEmbeddings(teacher_table(32).numpy(), [e.id for e in data])
    else:
        data, teacher = instruct_examples(32), None
    trainer = unime.Trainer(model, args.stage, teacher=teacher, **config)

    def kill(trainer, metrics):
        if metrics["step"] == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if metrics["step"] == args.hang_at:
            os.kill(os.getpid(), signal.SIGSTOP)  # alive but silent: the others must not wait forever

    trainer.callbacks.append(kill)
    try:
        trainer.fit(data, progress=False, max_steps=args.steps)  # --steps < 10: stop early (the schedule is 10's)
    except Exception as e:
        with open(os.path.join(args.out, f"error-rank{args.rank}.txt"), "w") as f:
            f.write(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        sys.exit(3)
    if args.rank == 0:
        unime.save_safetensors(os.path.join(args.out, "adapters.safetensors"), dict(trainer.trainable_parameters()))
    if args.world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
