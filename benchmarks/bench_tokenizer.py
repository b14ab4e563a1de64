"""Batch tokenization throughput: unime.Tokenizer vs Hugging Face tokenizers (Rust), same threads.

    python benchmarks/bench_tokenizer.py [--threads 2] [--strings 20000] [--repeats 5]
                                         [--tokenizers mistral_legacy,phi3,qwen2]

Uses the real tokenizer.json files that tests/python/tokenizer_assets.py builds from packages
(LLaVA-1.6 Mistral, Phi-3.5-V, Qwen2). The corpus is a fixed, seeded mix of English prose,
prompts with special tokens, code, and CJK / Arabic / Devanagari / Cyrillic / emoji text, 20 to
600 characters per string. Both libraries encode the same list with add_special_tokens=True and
return plain id lists to Python: unime.Tokenizer.encode_batch(texts, num_threads=T) against
tokenizers' encode_batch_fast (no offsets; its fastest batch path) with RAYON_NUM_THREADS=T. The
ids are checked to be identical first. Prints strings/s (median of the repeats) for each and the
ratio unime / tokenizers.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

WORDS = (
    "the of and a to in is you that it he was for on are as with his they I at be this have from "
    "or one had by word but not what all were we when your can said there use an each which she do "
    "how their if will up other about out many then them these so some her would make like him into "
    "time has look two more write go see number no way could people my than first water been call "
    "embedding retrieval multimodal image caption summary sentence representation contrastive model"
).split()
SNIPPETS = [
    "我们提出了一种新的多模态嵌入方法，在多个基准上取得了最好的结果。",
    "这张图片展示了一只在草地上奔跑的狗。",
    "日本語の文章とカタカナ、ひらがなが混ざっています。",
    "이 이미지는 해변에서 노는 아이들을 보여줍니다.",
    "تُظهر هذه الصورة قطة نائمة على الأريكة.",
    "यह चित्र पहाड़ों के ऊपर सूर्योदय को दर्शाता है।",
    "На этой фотографии изображён город ночью.",
    "Ein Hund läuft über die Wiese, während die Sonne untergeht.",
    "😀 👍🏽 👨‍👩‍👧‍👦 🇺🇸 ❤️ ✨",
    "def encode(self, texts: list[str]) -> torch.Tensor:\n    return self.model(**self.tok(texts))\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "SELECT id, caption FROM images WHERE score > 0.75 ORDER BY score DESC LIMIT 100;",
]
PROMPTS = [
    "[INST] <image>\nSummary above image in one word: [/INST]",
    "<|user|>\n{}\nSummary above sentence in one word:<|end|>\n<|assistant|>\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n"
    "<|im_start|>assistant\n<|endoftext|>",
]


def make_corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        target = rng.randint(20, 600)
        while sum(len(p) for p in parts) < target:
            r = rng.random()
            if r < 0.7:
                k = rng.randint(3, 15)
                s = " ".join(rng.choice(WORDS) for _ in range(k))
                parts.append(s.capitalize() + rng.choice([".", ",", "!", "?", ";", ""]))
            elif r < 0.9:
                parts.append(rng.choice(SNIPPETS))
            else:
                parts.append(str(rng.randint(0, 10**rng.randint(1, 8))))
        text = " ".join(parts)[:target]
        if rng.random() < 0.2:
            text = rng.choice(PROMPTS).replace("{}", text)
        out.append(text)
    return out


def median_rate(fn, n: int, repeats: int) -> float:
    fn()  # warm-up (and the word caches of tokenizers)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--strings", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tokenizers", default="mistral_legacy,phi3,qwen2")
    args = p.parse_args()

    # Before tokenizers is imported: its Rayon pool reads this once.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
    import tokenizers
    from tokenizer_assets import tokenizer_json

    import unime

    texts = make_corpus(args.strings)
    chars = sum(len(t) for t in texts)
    print(f"corpus: {len(texts)} strings, {chars / len(texts):.0f} characters on average; "
          f"threads: {args.threads}; tokenizers {tokenizers.__version__}")
    print(f"{'tokenizer':16s} {'unime str/s':>12s} {'HF str/s':>12s} {'ratio':>7s}")
    for name in args.tokenizers.split(","):
        path = tokenizer_json(name)
        ours = unime.Tokenizer.from_file(path)
        hf = tokenizers.Tokenizer.from_file(str(path))
        hf_batch = getattr(hf, "encode_batch_fast", hf.encode_batch)
        expected = [e.ids for e in hf_batch(texts, add_special_tokens=True)]
        if ours.encode_batch(texts, num_threads=args.threads) != expected:
            raise SystemExit(f"{name}: ids differ from tokenizers; not timing")
        ours_rate = median_rate(lambda: ours.encode_batch(texts, num_threads=args.threads), len(texts), args.repeats)
        hf_rate = median_rate(lambda: [e.ids for e in hf_batch(texts, add_special_tokens=True)], len(texts),
                              args.repeats)
        print(f"{name:16s} {ours_rate:12.0f} {hf_rate:12.0f} {ours_rate / hf_rate:7.2f}")


if __name__ == "__main__":
    main()
