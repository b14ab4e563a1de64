"""unime.Tokenizer against Hugging Face tokenizers (Rust) on real tokenizer files from packages.

The files (tokenizer_assets.py): the LLaVA-1.6 Mistral tokenizer (legacy and Metaspace forms) from
mistral-common, the Phi-3.5-V tokenizer from wordllama's Llama-2 file, and the Qwen2 tokenizer from
dashscope's qwen.tiktoken. Oracles: the tokenizers library itself, llama.cpp's Hugging Face-
generated vectors, and the prompt ids written down in shared/reference/backbones.md.
"""

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer

import unime
from tokenizer_assets import (
    BUILDERS,
    HAND_PICKED,
    corpus,
    llama_cpp_vectors,
    random_unicode,
    set_at,
    tokenizer_json,
)

NAMES = sorted(BUILDERS)
CORPUS = corpus()


@pytest.fixture(scope="module", params=NAMES)
def pair(request):
    path = tokenizer_json(request.param)
    return request.param, unime.Tokenizer.from_file(path), HFTokenizer.from_file(str(path))


def hf_ids(hf, texts, add_special_tokens):
    return [e.ids for e in hf.encode_batch(texts, add_special_tokens=add_special_tokens)]


def first_difference(texts, ours, theirs):
    for text, a, b in zip(texts, ours, theirs):
        if a != b:
            return f"{text!r}: unime {a} != tokenizers {b}"
    return None


def test_corpus_is_large_and_varied():
    assert len(CORPUS) >= 5000
    joined = "".join(CORPUS)
    for probe in ["中", "ع", "न", "ส", "П", "👨‍👩‍👧", "\u0301", "\t", "\n", "<|im_start|>", "<image>"]:
        assert probe in joined
    assert "" in CORPUS


@pytest.mark.parametrize("add_special_tokens", [True, False])
def test_corpus_ids_match_tokenizers(pair, add_special_tokens):
    name, ours, hf = pair
    got = ours.encode_batch(CORPUS, add_special_tokens=add_special_tokens)
    assert first_difference(CORPUS, got, hf_ids(hf, CORPUS, add_special_tokens)) is None


def test_single_encode_matches_batch(pair):
    _, ours, _ = pair
    batch = ours.encode_batch(HAND_PICKED, num_threads=2)
    assert [ours.encode(t) for t in HAND_PICKED] == batch
    assert ours.encode_batch(HAND_PICKED, num_threads=1) == batch


def test_every_code_point(pair):
    # All of Unicode except surrogates, 48 code points per string, with separators that exercise
    # the regex classes (letters, digits, apostrophes, newlines) and NFC (combining marks).
    _, ours, hf = pair
    cps = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    seps = ["", " ", "a", "1", "\n", "'", "e\u0301", "\u0316"]
    texts = [seps[(i // 48) % len(seps)].join(map(chr, cps[i : i + 48])) for i in range(0, len(cps), 48)]
    got = ours.encode_batch(texts, add_special_tokens=False)
    assert first_difference(texts, got, hf_ids(hf, texts, False)) is None


def test_seeded_random_unicode(pair):
    _, ours, hf = pair
    rng = random.Random(20240601)
    texts = [random_unicode(rng, rng.randint(0, 60)) for _ in range(6000)]
    got = ours.encode_batch(texts, add_special_tokens=False)
    assert first_difference(texts, got, hf_ids(hf, texts, False)) is None


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_property_random_text(text):
    for name in NAMES:
        ours, hf = _loaded(name)
        assert ours.encode(text) == hf.encode(text).ids, (name, text)
        ids = hf.encode(text, add_special_tokens=False).ids
        assert ours.decode(ids) == hf.decode(ids), (name, text)


_CACHE = {}


def _loaded(name):
    if name not in _CACHE:
        path = tokenizer_json(name)
        _CACHE[name] = (unime.Tokenizer.from_file(path), HFTokenizer.from_file(str(path)))
    return _CACHE[name]


@pytest.mark.parametrize("skip_special_tokens", [True, False])
def test_decode_matches_tokenizers(pair, skip_special_tokens):
    _, ours, hf = pair
    for ids in hf_ids(hf, CORPUS, True)[:3000]:
        assert ours.decode(ids, skip_special_tokens) == hf.decode(ids, skip_special_tokens=skip_special_tokens)


def test_decode_of_arbitrary_ids(pair):
    # Byte tokens out of order, invalid UTF-8 sequences, ids past the vocabulary.
    _, ours, hf = pair
    rng = random.Random(7)
    n = hf.get_vocab_size()
    for _ in range(2000):
        ids = [rng.randrange(n + 5) for _ in range(rng.randint(0, 12))]
        if rng.random() < 0.5:
            ids += [rng.randrange(3, 259) for _ in range(rng.randint(1, 6))]  # byte-ish ids
        assert ours.decode(ids, False) == hf.decode(ids, skip_special_tokens=False), ids


def test_round_trip_wherever_tokenizers_round_trips(pair):
    _, ours, hf = pair
    trips = 0
    for text in CORPUS:
        if hf.decode(hf.encode(text, add_special_tokens=False).ids, skip_special_tokens=False) == text:
            assert ours.decode(ours.encode(text, add_special_tokens=False), False) == text
            trips += 1
    assert trips > 1000


def test_vocab_and_token_lookup(pair):
    _, ours, hf = pair
    assert ours.vocab_size() == hf.get_vocab_size(with_added_tokens=True)
    assert ours.vocab_size(with_added_tokens=False) == hf.get_vocab_size(with_added_tokens=False)
    rng = random.Random(3)
    n = hf.get_vocab_size()  # computed by tokenizers on each call: keep it out of the loop
    for i in [0, 1, 2, 13] + [rng.randrange(n) for _ in range(500)]:
        token = hf.id_to_token(i)
        assert ours.id_to_token(i) == token
        assert ours.token_to_id(token) == hf.token_to_id(token)
    assert ours.id_to_token(10**8) is None
    assert ours.token_to_id("no such token \u2603\u2603") is None


# --- independent oracles --------------------------------------------------------------------

LLAMA_CPP = [("llama-spm", "phi3"), ("phi-3", "phi3"), ("qwen2", "qwen2")]


@pytest.mark.parametrize("vocab,name", LLAMA_CPP)
def test_llama_cpp_hf_vectors(vocab, name):
    # Ids generated by llama.cpp with AutoTokenizer on the real hub tokenizers.
    ours, _ = _loaded(name)
    pairs = llama_cpp_vectors(vocab)
    assert len(pairs) >= 40
    for text, ids in pairs:
        assert ours.encode(text, add_special_tokens=False) == ids, text


def test_llava_mistral_prompt_ids():
    ours, _ = _loaded("mistral_legacy")
    ids = ours.encode("[INST] <image>\nSummary above image in one word: [/INST]")
    assert ids[:8] == [1, 733, 16289, 28793, 28705, 32000, 28705, 13]
    assert ids[-4:] == [733, 28748, 16289, 28793]
    assert ours.encode("Hello world!", add_special_tokens=False) == [22557, 1526, 28808]
    # Metaspace(prepend_scheme="first") form: no "▁" after <image>.
    meta, _ = _loaded("mistral_metaspace")
    assert meta.encode("[INST] <image>\nSummary")[:7] == [1, 733, 16289, 28793, 28705, 32000, 13]


def test_phi3_prompt_ids():
    ours, _ = _loaded("phi3")
    assert ours.encode("<|user|>\n") == [1, 32010, 29871, 13]
    ids = ours.encode("\nSummary above image in one word:<|end|>\n<|assistant|>\n")
    assert ids[:3] == [1, 29871, 13]
    assert ids[-6:] == [32007, 29871, 13, 32001, 29871, 13]
    assert ours.encode("<|image_1|>", add_special_tokens=False) == [529, 29989, 3027, 29918, 29896, 29989, 29958]
    assert ours.encode("Hello world", add_special_tokens=False) == [15043, 3186]


def test_qwen2_prompt_ids():
    ours, _ = _loaded("qwen2")
    assert ours.encode("Hello world") == [9707, 1879]  # no BOS
    ids = ours.encode("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Hi<|im_end|>\n<|endoftext|>")
    assert ids[0] == 151644 and ids[-1] == 151643
    assert [151652, 151655, 151653] == ids[3:6]
    assert ours.encode("12345", add_special_tokens=False) == [16, 17, 18, 19, 20]  # single digits


# --- tokenizer.json variants: every flag and option against tokenizers ----------------------


def _variant(name, edit):
    j = json.loads(tokenizer_json(name).read_text(encoding="utf-8"))
    edit(j)
    text = json.dumps(j)
    return unime.Tokenizer.from_str(text), HFTokenizer.from_str(text)


def _flags(**changes):
    def edit(j):
        for tok in j["added_tokens"]:
            if tok["content"] in changes:
                tok.update(changes[tok["content"]])
        j["added_tokens"] += [
            dict(id=0, content=c, single_word=False, lstrip=False, rstrip=False, normalized=True, special=False)
            for c in ("hello world", " the", "▁dog")
        ]

    return edit


_set = set_at


QWEN_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)

VARIANTS = {
    "phi3-added-token-flags": (
        "phi3",
        _flags(**{
            "<|end|>": dict(rstrip=True),
            "<|user|>": dict(lstrip=True),
            "<|assistant|>": dict(lstrip=True, rstrip=True),
            "<|system|>": dict(single_word=True),
            "<|endoftext|>": dict(normalized=True),
            "<|placeholder3|>": dict(special=False),
        }),
    ),
    "qwen2-added-token-flags": (
        "qwen2",
        _flags(**{
            "<|im_start|>": dict(lstrip=True, rstrip=True),
            "<|image_pad|>": dict(single_word=True),
            "<|im_end|>": dict(normalized=True),
        }),
    ),
    "metaspace-always-split": (
        "mistral_metaspace",
        _set(["pre_tokenizer"], {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}),
    ),
    "metaspace-never": (
        "mistral_metaspace",
        _set(["pre_tokenizer"], {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": False}),
    ),
    "metaspace-legacy-fields": (
        "mistral_metaspace",
        _set(["pre_tokenizer"], {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}),
    ),
    "llama-no-fuse-unk-no-byte-fallback": (
        "mistral_legacy",
        lambda j: j["model"].update(fuse_unk=False, byte_fallback=False),
    ),
    "llama-fuse-unk-no-byte-fallback": (
        "phi3",
        lambda j: j["model"].update(fuse_unk=True, byte_fallback=False),
    ),
    "qwen2-llama3-digits": (
        "qwen2",
        lambda j: j["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(Regex=QWEN_LLAMA3_PATTERN),
    ),
    "qwen2-ignore-merges": ("qwen2", lambda j: j["model"].update(ignore_merges=True)),
    "gpt2-style-byte-level": (
        "qwen2",
        _set(["pre_tokenizer"],
             {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}),
    ),
    "byte-level-no-prefix-no-regex": (
        "qwen2",
        _set(["pre_tokenizer"], {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                 "use_regex": False}),
    ),
    "split-removed-invert": (
        "qwen2",
        lambda j: j["pre_tokenizer"]["pretokenizers"][0].update(behavior="Removed", invert=True),
    ),
    "split-merged-with-previous": (
        "qwen2",
        _set(["pre_tokenizer", "pretokenizers", 0], {"type": "Split", "pattern": {"String": " "},
                                                    "behavior": "MergedWithPrevious", "invert": False}),
    ),
    "split-merged-with-next": (
        "qwen2",
        _set(["pre_tokenizer", "pretokenizers", 0], {"type": "Split", "pattern": {"String": "e"},
                                                    "behavior": "MergedWithNext", "invert": False}),
    ),
    "split-contiguous": (
        "qwen2",
        _set(["pre_tokenizer", "pretokenizers", 0], {"type": "Split", "pattern": {"String": "  "},
                                                    "behavior": "Contiguous", "invert": False}),
    ),
    "nfd-strip-normalizer": (
        "mistral_legacy",
        lambda j: j.update(normalizer={"type": "Sequence", "normalizers": [
            {"type": "NFD"}, {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}),
    ),
    "metaspace-decoder-no-normalizer": (
        "mistral_metaspace",
        _set(["decoder"], {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}),
    ),
    "no-decoder-no-post-processor": (
        "phi3",
        lambda j: j.update(decoder=None, post_processor=None),
    ),
    "template-bos-eos": (
        "phi3",
        lambda j: j["post_processor"].update(
            single=[{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            special_tokens={"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                            "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}),
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_matches_tokenizers(variant):
    base, edit = VARIANTS[variant]
    ours, hf = _variant(base, edit)
    texts = CORPUS[:1000] + [
        "hello world the dog", " hello world", "xhello worldx", "a  <|end|>  b", "<|user|>  x",
        "x<|system|>y", "x <|system|> y", "_<|system|>_", "<|image_pad|>a", " <|image_pad|> ",
        "<|im_start|>  \n user  <|im_start|>", "▁dog ▁▁dog", "aaa  bbb   ccc",
    ]
    for add in (True, False):
        got = ours.encode_batch(texts, add_special_tokens=add)
        assert first_difference(texts, got, hf_ids(hf, texts, add)) is None
    for ids in hf_ids(hf, texts[:300], True):
        for skip in (True, False):
            assert ours.decode(ids, skip) == hf.decode(ids, skip_special_tokens=skip)
    assert ours.vocab_size() == hf.get_vocab_size()


def test_added_token_ids_assigned_like_tokenizers():
    # The "id" fields are not trusted: tokenizers assigns ids in file order on load.
    def edit(j):
        j["added_tokens"] += [
            dict(id=40000, content="<x>", single_word=False, lstrip=False, rstrip=False, normalized=True,
                 special=False),
            dict(id=39000, content="<y>", single_word=False, lstrip=False, rstrip=False, normalized=False,
                 special=True),
            dict(id=7, content="hello", single_word=False, lstrip=False, rstrip=False, normalized=False, special=False),
            dict(id=5, content="<y>", single_word=False, lstrip=True, rstrip=False, normalized=False, special=True),
        ]

    ours, hf = _variant("mistral_legacy", edit)
    for tok in ["<x>", "<y>", "hello", "<image>", "<pad>"]:
        assert ours.token_to_id(tok) == hf.token_to_id(tok)
    text = "a<x>b<y>c hello <pad> ▁<x>"
    assert ours.encode(text) == hf.encode(text).ids
    assert ours.vocab_size() == hf.get_vocab_size()


def test_truncation_matches_tokenizers():
    for name in NAMES:
        ours, _ = _loaded(name)
        hf = HFTokenizer.from_file(str(tokenizer_json(name)))
        for direction in ("right", "left"):
            for max_length in (1, 2, 5, 17):
                ours.enable_truncation(max_length, direction)
                hf.enable_truncation(max_length, direction=direction)
                for add in (True, False):
                    texts = CORPUS[:300]
                    got = ours.encode_batch(texts, add_special_tokens=add)
                    assert first_difference(texts, got, hf_ids(hf, texts, add)) is None
        ours.no_truncation()


def test_truncation_from_tokenizer_json():
    ours, hf = _variant("phi3", _set(["truncation"], {"direction": "Left", "max_length": 6, "strategy": "LongestFirst",
                                                     "stride": 0}))
    assert ours.truncation == {"max_length": 6, "direction": "left"}
    for text in CORPUS[:300]:
        assert ours.encode(text) == hf.encode(text).ids
