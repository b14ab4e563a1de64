"""A training run for the kill-and-resume test (test_trainer_resume.py), as its own process:

    python train_run.py CHECKPOINT OUTPUT_DIR [--kill-at STEP]

Stage 2 on 24 MMEB-shaped examples (batches of 4, so epochs turn over), LoRA dropout on (so the RNG
state matters), a checkpoint every 2 steps, resuming from the latest complete one. --kill-at sends
SIGKILL to itself right after that step's metrics are written. At the end the adapters are saved to
OUTPUT_DIR/final.safetensors.
"""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))

import unime  # noqa: E402
from trainer_fixtures import instruct_examples  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("output_dir")
    p.add_argument("--kill-at", type=int, default=0)
    args = p.parse_args()
    model = unime.Model.from_pretrained(args.checkpoint)
    trainer = unime.Trainer(model, "instruct", lora_r=4, lora_alpha=8, lora_dropout=0.2, batch_size=4,
                            hard_negatives=2, max_steps=10, warmup_steps=2, learning_rate=3e-3, chunk_size=3,
                            save_every=2, keep_last=2, output_dir=args.output_dir, seed=7)

    def kill(trainer, metrics):
        if metrics["step"] == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer.callbacks.append(kill)
    trainer.fit(instruct_examples(24, seed=2), progress=False)
    unime.save_safetensors(os.path.join(args.output_dir, "final.safetensors"), dict(trainer.trainable_parameters()))


if __name__ == "__main__":
    main()
