"""Real tokenizer.json files, built at test time from tokenizer data that PyPI packages ship.

Nothing comes from the model hub. Each builder converts a file found inside an installed package
(requirements.txt pins them) with transformers / tokenizers, the same converters that produced the
hub's tokenizer.json files, and caches the result (see docs/tokenizer.md, "Test assets"):

  mistral_legacy    mistral-common's tokenizer.model.v1 (Mistral-7B v0.1/v0.2 SentencePiece BPE)
                    through LlamaTokenizerFast(legacy=True) + <image> 32000, <pad> 32001: the
                    llava-hf LLaVA-1.6 Mistral tokenizer (backbones.md A.6).
  mistral_metaspace the same model with legacy=False: Metaspace(prepend_scheme="first", split=False).
  phi3              wordllama's Llama-2 tokenizer.json + the Phi-3 chat tokens 32000-32010
                    (Phi-3.5-V, backbones.md B.6).
  qwen2             dashscope's qwen.tiktoken -> byte-level BPE with NFC, the Qwen2 Split regex and
                    ByteLevel, + the Qwen2-VL special tokens 151643-151656 (backbones.md C.6).

llama_cpp_vectors() gives the Hugging Face-generated id vectors that llama.cpp keeps (models/
ggml-vocab-*.gguf.inp/.out), read from the llama-cpp-python sdist fetched with `pip download`
(it cannot be pinned in requirements.txt: installing it compiles llama.cpp).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path

# Bump when a builder changes so stale cached files are rebuilt.
_BUILDER_VERSION = "2"
LLAMA_CPP_PYTHON_SDIST = "llama-cpp-python==0.3.16"


def cache_dir() -> Path:
    root = os.environ.get("UNIME_TEST_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "unime", "test-assets"
    )
    path = Path(root) / "tokenizers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_file(package: str, relative: str, sha256: str | None = None) -> Path:
    """A data file inside an installed package; fails loudly if the package or file is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed (pip install -r requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from package {package!r}")
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256:
            raise RuntimeError(f"{path}: sha256 {digest}, expected {sha256}")
    return path


def _added(content, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False):
    from tokenizers import AddedToken

    return AddedToken(
        content, special=special, normalized=normalized, lstrip=lstrip, rstrip=rstrip, single_word=single_word
    )


def _build_mistral(legacy: bool) -> str:
    from transformers import LlamaTokenizerFast

    model = package_file(
        "mistral_common",
        "data/tokenizer.model.v1",
        "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055",
    )
    # add_prefix_space=True: the hub files prepend "▁" (without it the converter leaves it out).
    fast = LlamaTokenizerFast(
        vocab_file=str(model), legacy=legacy, add_prefix_space=True, from_slow=True, add_bos_token=True
    )
    tok = fast.backend_tokenizer
    # llava-hf adds <image> (special, not normalized) and <pad> after the 32000 SentencePiece pieces.
    tok.add_special_tokens([_added("<image>"), _added("<pad>")])
    return tok.to_str()


def _build_phi3() -> str:
    from tokenizers import Tokenizer

    path = package_file(
        "wordllama",
        "tokenizers/l2_supercat_tokenizer_config.json",
        "93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68",
    )
    tok = Tokenizer.from_file(str(path))
    # Phi-3 / Phi-3.5-V chat tokens (backbones.md B.5): special, not normalized, no strip.
    names = ["<|endoftext|>", "<|assistant|>"] + [f"<|placeholder{i}|>" for i in range(1, 5)]
    names += ["<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>"]
    tok.add_special_tokens([_added(n) for n in names])
    return tok.to_str()


QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]


def _build_qwen2() -> str:
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = package_file(
        "dashscope",
        "resources/qwen.tiktoken",
        "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186",
    )
    vocab, merges = TikTokenConverter(vocab_file=str(path)).extract_vocab_merges_from_model(str(path))
    # As transformers' Qwen2Converter writes it: no unk, no byte fallback, merges honoured.
    tok = Tokenizer(BPE(vocab, merges, unk_token=None, fuse_unk=False, byte_fallback=False,
                        continuing_subword_prefix="", end_of_word_suffix=""))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([_added(n) for n in QWEN2_SPECIALS])
    return tok.to_str()


BUILDERS = {
    "mistral_legacy": lambda: _build_mistral(legacy=True),
    "mistral_metaspace": lambda: _build_mistral(legacy=False),
    "phi3": _build_phi3,
    "qwen2": _build_qwen2,
}


def tokenizer_json(name: str) -> Path:
    """Path of the cached tokenizer.json `name` (one of BUILDERS), building it on first use."""
    import tokenizers
    import transformers

    tag = f"{name}-b{_BUILDER_VERSION}-tk{tokenizers.__version__}-tf{transformers.__version__}"
    path = cache_dir() / f"{tag}.json"
    if not path.exists():
        text = BUILDERS[name]()
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path


# --- llama.cpp's Hugging Face-generated vectors -------------------------------------------------

LLAMA_CPP_VOCABS = ("llama-spm", "phi-3", "qwen2")


def _llama_cpp_sdist() -> Path:
    explicit = os.environ.get("UNIME_LLAMA_CPP_SDIST")
    if explicit:
        return Path(explicit)
    target = cache_dir() / "sdist"
    found = sorted(target.glob("llama_cpp_python-*.tar.gz"))
    if found:
        return found[-1]
    target.mkdir(parents=True, exist_ok=True)
    # --no-build-isolation: pip only reads the sdist's metadata (scikit-build-core is installed).
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         "--no-build-isolation", LLAMA_CPP_PYTHON_SDIST, "-d", str(target)],
        check=True,
    )
    found = sorted(target.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        raise RuntimeError(f"pip download {LLAMA_CPP_PYTHON_SDIST} left no sdist in {target}")
    return found[-1]


def llama_cpp_vectors(vocab: str) -> list[tuple[str, list[int]]]:
    """(text, ids) pairs of llama.cpp's models/ggml-vocab-{vocab}.gguf.inp/.out (add_special_tokens=False)."""
    out_dir = cache_dir() / "llama_cpp_vectors"
    inp_path, out_path = out_dir / f"{vocab}.inp", out_dir / f"{vocab}.out"
    if not (inp_path.exists() and out_path.exists()):
        out_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(_llama_cpp_sdist()) as tar:
            for member in tar.getmembers():
                for suffix, dest in ((".inp", inp_path), (".out", out_path)):
                    if member.name.endswith(f"/models/ggml-vocab-{vocab}.gguf{suffix}"):
                        dest.write_bytes(tar.extractfile(member).read())
    # llama.cpp writes each text followed by "\n__ggml_vocab_test__\n", and one line of
    # space-separated ids per text (tokenizer.encode(text, add_special_tokens=False)).
    texts = inp_path.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    lines = out_path.read_text(encoding="utf-8").split("\n")
    if len(lines) < len(texts):
        raise RuntimeError(f"{out_path}: {len(lines)} id lines for {len(texts)} texts")
    pairs = [(text, [int(x) for x in line.split()]) for text, line in zip(texts, lines)]
    return pairs



# --- test strings ---------------------------------------------------------------------------
# corpus(seed) gives the same ~5,000 strings on every run: many scripts, emoji and ZWJ sequences,
# combining marks, whitespace runs, tabs, newlines, digits, code, contractions, the special tokens
# of every supported family inside text, and the empty string.

# Special tokens of all families: each tokenizer sees the others' as plain text.
SPECIALS = [
    "<s>", "</s>", "<unk>", "<image>", "<pad>",
    "<|user|>", "<|assistant|>", "<|end|>", "<|system|>", "<|endoftext|>", "<|placeholder3|>",
    "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>",
    "<|image_1|>", "[INST]", "[/INST]", "<|im_start", "<s", "</s",
]

HAND_PICKED = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", " \t\n \r\n  x", "▁", "▁▁", " ▁ ",
    "Hello world", " Hello world", "Hello world!", "hello  world", "Hello\tworld\nnext line\n",
    "[INST] <image>\nSummary above image in one word: [/INST]",
    "[INST] <sent>\nSummary above sentence in one word: [/INST]",
    "<|user|>\n<|image_1|>\nSummary above image in one word:<|end|>\n<|assistant|>\n",
    "<|user|>\nA dog on the grass\nSummary above sentence in one word:<|end|>\n<|assistant|>\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n<|im_start|>assistant\n<|endoftext|>",
    "<|image_pad|> Find an image that matches the caption. A cat sleeping",
    "<s><s></s><image><image><pad>", "<image>\nUSER: What's shown here?\nASSISTANT:",
    "I'm, you're, he's, we've, they'll, I'd, don't, DON'T, I'M, 'S 'T 'RE 'VE 'M 'LL 'D, 'ſ",
    "it's 'tis 'twas o'clock rock'n'roll ''' '' ' 's",
    "3.14159 1,000,000 12345678901234567890 ٣٤٥ ४२ 一二三 ⅫⅣ ½ ²³",
    "def f(x):\n    return x**2  # square\n\tif x>0: pass\n",
    "for (int i = 0; i < n; ++i) { a[i] += b[i] * 2; }  // C++",
    "SELECT * FROM t WHERE id=42 AND name LIKE '%ab%';",
    "{\"key\": [1, 2, {\"nested\": null}], \"url\": \"https://example.com/a?b=c&d=e\"}",
    "我爱北京天安门。今天天气很好！",
    "日本語のテキスト、カタカナとひらがな。",
    "한국어 문장입니다. 안녕하세요!",
    "مرحبا بالعالم! هذا نص عربي.",
    "नमस्ते दुनिया। यह हिंदी पाठ है।",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่าง",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Γειά σου Κόσμε", "שלום עולם", "Ελληνικά και Русский и English",
    "👋🌍 😀😃😄 👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 🇺🇸🇯🇵 ❤️ ✌🏿",
    "e\u0301 é e\u0301\u0323 \u1100\u1161\u11a8 a\u0308\u0304 \u0061\u0328\u0301 ﬁ Å Å",
    "Ǹ ǹ ḱ ẛ̣ ṩ q̣̇ \u0958 \u09cb \u0b4b \u0dda \u1e9b\u0323",
    "\u200b\u200c\u200d\ufeff \u00a0\u2003\u3000 \u2028\u2029 \u0085 \u1680 \u180e",
    "\x1c\x1d\x1e\x1f \x0b\x0c \x7f\x00",
    "tab\tseparated\tvalues\t\t\tend", "     leading and trailing     ",
    "\n\n\n\nmany newlines\n\n\n", "\r\r\n\n\r", "a\u00a0b\u2009c",
    "ÀÉÎÕÜ àéîõü ñ ç ß ø å æ œ", "ﬀ ﬃ ㎏ ① ⑴ ｆｕｌｌｗｉｄｔｈ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕿𝖊𝖝𝖙 𐍈 𓀀 🀄 \U0001F9D1\u200D\U0001F680",
    "\ue000\uf8ff \U000F0000 \U0010FFFD", "\uffff\ufffe\ufffd",
]

FRAGMENTS = [
    "the", "The", " quick", "brown", " fox", "jumps", "over", "lazy", "dog", "A", "a", "I", "it's",
    "don't", "we'll", "HELLO", "World", "tokenization", "embedding", "multimodal", "retrieval",
    "123", "4567", "0", " 89", "3.5", "v2.1", "1e-5", "2024-06-01", "#1", "$100", "50%",
    ".", ",", "!", "?", ":", ";", "...", "--", "—", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\",
    "'", "\"", "`", "~", "@", "&", "*", "+", "=", "|", "^", "_", "__init__", "->", "=>", "!=", "::",
    " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\u00a0", "\u3000", "\u2003",
    "中文", "字", "汉语拼音", "こんにちは", "カタカナ", "한국어", "안녕", "العربية", "سلام",
    "हिन्दी", "संस्कृतम्", "ภาษาไทย", "ครับ", "русский", "Ёлка", "ελληνικά", "עברית", "ქართული",
    "Tiếng Việt", "português", "français", "Straße", "İstanbul", "Ǆ", "ǅ",
    "😀", "👍🏽", "👨‍👩‍👧", "🏳️‍⚧️", "🇩🇪", "❤️", "✨", "🤖", "🧑‍🔬",
    "e\u0301", "a\u0308", "\u0915\u094d\u0937", "\u0e01\u0e34\u0e48", "\u1100\u1161", "\u11a8", "o\u0302\u0323",
    "▁", "▁▁", "<0x0A>", "Ġ", "Ċ", "ĠĠ", "\ufffd", "\u200d", "\ufeff",
]


def corpus(seed: int = 1234, n_random: int = 5000) -> list[str]:
    rng = random.Random(seed)
    out = list(HAND_PICKED)
    pool = FRAGMENTS + SPECIALS
    for _ in range(n_random):
        k = rng.randint(1, 12)
        parts = []
        for _ in range(k):
            r = rng.random()
            if r < 0.08:
                parts.append(rng.choice(SPECIALS))
            elif r < 0.15:
                parts.append(" " * rng.randint(1, 6))
            elif r < 0.18:
                parts.append(rng.choice(HAND_PICKED))
            else:
                parts.append(rng.choice(pool))
        sep = rng.choice(["", "", " ", " ", "\n", "\t"])
        out.append(sep.join(parts))
    return out


def random_unicode(rng: random.Random, length: int) -> str:
    """A string of random code points: mostly from the BMP scripts, some from anywhere."""
    chars = []
    for _ in range(length):
        r = rng.random()
        if r < 0.3:
            cp = rng.randint(0x20, 0x7E)
        elif r < 0.45:
            cp = rng.choice([0x20, 0x09, 0x0A, 0x0D, 0xA0, 0x3000, 0x2003, 0x85])
        elif r < 0.6:
            cp = rng.randint(0x300, 0x36F)  # combining marks
        elif r < 0.9:
            cp = rng.randint(0xA0, 0xFFFD)
        else:
            cp = rng.randint(0x10000, 0x10FFFF)
        if 0xD800 <= cp < 0xE000:
            cp = 0xFFFD
        chars.append(chr(cp))
    return "".join(chars)

if __name__ == "__main__":
    for name in BUILDERS:
        print(name, tokenizer_json(name))
    for vocab in LLAMA_CPP_VOCABS:
        print(vocab, len(llama_cpp_vectors(vocab)))


def set_at(path, value):
    """An edit for a tokenizer.json dict: sets the value at `path` (a sequence of keys/indices)."""

    def edit(j):
        node = j
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit
