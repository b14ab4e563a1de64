"""unime.Tokenizer: API, bad input and malformed tokenizer.json files."""

import json
import threading

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers

import unime
from tokenizer_assets import HAND_PICKED, corpus, set_at, tokenizer_json


@pytest.fixture(scope="module")
def qwen():
    return unime.Tokenizer.from_file(tokenizer_json("qwen2"))


@pytest.fixture(scope="module")
def llava():
    return unime.Tokenizer.from_file(tokenizer_json("mistral_legacy"))


@pytest.fixture(scope="module")
def llava_json():
    return json.loads(tokenizer_json("mistral_legacy").read_text(encoding="utf-8"))


def load_edited(base, edit):
    j = json.loads(json.dumps(base))
    edit(j)
    return unime.Tokenizer.from_str(json.dumps(j))


def test_exported_from_package(llava):
    assert unime.Tokenizer is type(llava)
    assert "Tokenizer" in unime.__all__
    assert repr(llava) == "Tokenizer(vocab_size=32002)"


def test_from_str_equals_from_file(llava):
    again = unime.Tokenizer.from_str(tokenizer_json("mistral_legacy").read_text(encoding="utf-8"))
    assert again.encode_batch(HAND_PICKED) == llava.encode_batch(HAND_PICKED)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        unime.Tokenizer.from_file(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="directory"):
        unime.Tokenizer.from_file(tmp_path)


def test_special_tokens_and_lookup(qwen, llava):
    assert ("<image>", 32000) in llava.special_tokens
    assert dict(qwen.special_tokens)["<|im_start|>"] == 151644
    assert llava.token_to_id("▁Hello") == 22557
    assert llava.id_to_token(28705) == "▁"
    assert llava.vocab_size(with_added_tokens=False) == 32000


@pytest.mark.parametrize("threads", [0, 1, 2, 3, 8])
def test_batch_thread_counts_agree(qwen, threads):
    texts = corpus()[:800]
    assert qwen.encode_batch(texts, num_threads=threads) == [qwen.encode(t) for t in texts]


def test_batch_edge_cases(qwen):
    assert qwen.encode_batch([]) == []
    assert qwen.encode_batch(iter(["a", "b"])) == [[64], [65]]
    assert qwen.encode_batch(("Hello",), add_special_tokens=False) == [[9707]]
    with pytest.raises(ValueError, match="input 1 must be str or bytes"):
        qwen.encode_batch(["a", 3])
    with pytest.raises(ValueError):
        qwen.encode_batch(["a"], num_threads=-1)


def test_concurrent_callers_share_one_tokenizer(qwen):
    texts = corpus()[:400]
    expected = [qwen.encode(t) for t in texts]
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(qwen.encode_batch(texts, num_threads=2) == expected)
                results.append([qwen.encode(t) for t in texts[:50]] == expected[:50])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 24 and all(results)


# --- bad input --------------------------------------------------------------------------------


def test_bytes_input(qwen):
    assert qwen.encode("héllo wörld".encode()) == qwen.encode("héllo wörld")
    assert qwen.encode_batch([b"abc", "abc"]) == [qwen.encode("abc")] * 2


@pytest.mark.parametrize(
    "data,offset",
    [(b"ab\xffcd", 2), (b"\xc3", 0), (b"ok\xed\xa0\x80", 2), (b"\xf4\x90\x80\x80", 0), (b"\xc0\xaf", 0),
     (b"abc\xe4\xb8", 3), (b"\x80", 0)],
)
def test_invalid_utf8_is_an_error_with_offset(qwen, data, offset):
    # tokenizers accepts only str (valid Unicode); unime also takes bytes and refuses ill-formed
    # UTF-8 (overlong forms, surrogates, > U+10FFFF, truncated sequences) naming the offset.
    with pytest.raises(ValueError, match=f"not valid UTF-8 \\(first bad byte at offset {offset}\\)"):
        qwen.encode(data)
    with pytest.raises(ValueError, match=f"input 2: text is not valid UTF-8 \\(first bad byte at offset {offset}\\)"):
        qwen.encode_batch([b"fine", "fine", data, b"fine"])


def test_lone_surrogate_is_an_error(qwen):
    # tokenizers raises TypeError for such a str; unime says what is wrong with it.
    with pytest.raises(ValueError, match="text cannot be encoded as UTF-8 \\(it holds a lone surrogate\\)"):
        qwen.encode("a\ud800b")
    with pytest.raises(ValueError, match="input 1 cannot be encoded"):
        qwen.encode_batch(["ok", "\udfff"])


def test_length_guard(llava_json):
    tok = unime.Tokenizer.from_str(json.dumps(llava_json))
    assert tok.max_input_chars == 1_000_000
    tok.max_input_chars = 10
    assert len(tok.encode("0123456789")) > 1
    assert tok.encode("中文中文中文中文中文") == tok.encode_batch(["中文中文中文中文中文"])[0]  # 10 chars, 30 bytes
    with pytest.raises(ValueError, match="text is 11 characters long, over the limit of 10 \\(max_input_chars"):
        tok.encode("0123456789A")
    with pytest.raises(ValueError, match="input 2 is 12 characters long"):
        tok.encode_batch(["a", "b", "中" * 12])
    # Checked before any tokenization: an over-long input is refused even if it is invalid UTF-8.
    with pytest.raises(ValueError, match="characters long"):
        tok.encode(b"\xff" * 11)
    tok.max_input_chars = 0  # no limit
    assert len(tok.encode("x" * 2_000_000, add_special_tokens=False)) > 0
    with pytest.raises(ValueError):
        tok.max_input_chars = -1


def test_truncation_api(llava):
    llava.enable_truncation(4)
    try:
        assert llava.truncation == {"max_length": 4, "direction": "right"}
        assert llava.encode("Hello world, how are you today?") == [1, 22557, 1526, 28725]
        llava.enable_truncation(4, "left")
        assert llava.encode("Hello world, how are you today?")[0] == 1
        with pytest.raises(ValueError, match="direction"):
            llava.enable_truncation(4, "middle")
        with pytest.raises(ValueError):
            llava.enable_truncation(0)
    finally:
        llava.no_truncation()
    assert llava.truncation is None


def test_truncation_shorter_than_special_tokens(llava_json):
    tok = load_edited(llava_json, lambda j: j.update(truncation={"max_length": 1, "direction": "Right",
                                                                 "strategy": "LongestFirst", "stride": 0}))
    assert tok.encode("Hello world", add_special_tokens=False) == [22557]
    assert tok.encode("Hello world") == [1]


def test_decode_edge_cases(llava):
    assert llava.decode([]) == ""
    assert llava.decode([10**9, -5 + 2**31, 22557]) == "Hello"  # unknown ids are skipped
    assert llava.decode([1, 22557, 32000], skip_special_tokens=False) == "<s> Hello<image>"
    assert llava.decode_batch([[22557], [1526]]) == ["Hello", "world"]
    # A run of byte tokens that is not valid UTF-8 becomes one U+FFFD per byte (as in tokenizers).
    assert llava.decode([28705, 13, 234]) == "\ufffd\ufffd"


# --- malformed and unsupported tokenizer.json -------------------------------------------------


def _del(*path):
    def edit(j):
        node = j
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def _put(value, *path):
    return set_at(path, value)


MALFORMED = [
    (_del("model"), r"tokenizer.json: model: missing"),
    (_del("model", "vocab"), r"model.vocab: missing"),
    (_put([], "model", "vocab"), r"model.vocab: expected an object"),
    (_put("x", "model", "vocab", "<s>"), r'model.vocab\["<s>"\]: expected a non-negative 32-bit integer id'),
    (_put(-3, "model", "vocab", "<s>"), r'model.vocab\["<s>"\]'),
    (_put(["a"], "model", "merges", 3), r"model.merges\[3\]: expected a string"),
    (_put("ab", "model", "merges", 4), r"model.merges\[4\]: expected two tokens"),
    (_put(["▁", "no-such-token"], "model", "merges", 0), r'model.merges\[0\]: token "no-such-token" is not'),
    (_put(["▁", "<s>"], "model", "merges", 0), r'model.merges\[0\]: merged token "▁<s>" is not'),
    (_put(7, "model", "merges"), r"model.merges: expected an array"),
    (_put("yes", "model", "byte_fallback"), r"model.byte_fallback: expected true or false"),
    (_put(0.1, "model", "dropout"), r"model.dropout: unsupported component: BPE dropout"),
    (_put("WordPiece", "model", "type"), r'model.type: unsupported component: model type "WordPiece"'),
    (_del("added_tokens", 1, "content"), r"added_tokens\[1\].content: missing"),
    (_put("", "added_tokens", 2, "content"), r"added_tokens\[2\].content: an added token cannot be empty"),
    (_put({}, "added_tokens"), r"added_tokens: expected an array"),
    (_put({"type": "NFKC"}, "normalizer"), r'normalizer: unsupported component: normalizer type "NFKC"'),
    (_put({"type": "Lowercase"}, "normalizer", "normalizers", 1),
     r'normalizer.normalizers\[1\]: unsupported component: normalizer type "Lowercase"'),
    (_put({"Regex": "\\s+"}, "normalizer", "normalizers", 1, "pattern"),
     r"normalizer.normalizers\[1\].pattern: unsupported component: Replace with a Regex"),
    (_put({"type": "Whitespace"}, "pre_tokenizer"),
     r'pre_tokenizer: unsupported component: pre_tokenizer type "Whitespace"'),
    (_put({"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": False}, "pre_tokenizer"),
     r'pre_tokenizer.pattern: unsupported component: Split regex "\\w\+"'),
    (_put({"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways", "invert": False}, "pre_tokenizer"),
     r'pre_tokenizer.behavior: unknown split behavior "Sideways"'),
    (_put({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "sometimes"}, "pre_tokenizer"),
     r"pre_tokenizer.prepend_scheme: expected"),
    (_put({"type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]}, "post_processor"),
     r'post_processor: unsupported component: post_processor type "BertProcessing"'),
    (_put([{"SpecialToken": {"id": "<x>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
          "post_processor", "single"), r'post_processor.single\[0\]: special token "<x>" is not in special_tokens'),
    (_put({"type": "WordPiece", "prefix": "##", "cleanup": True}, "decoder"),
     r'decoder: unsupported component: decoder type "WordPiece"'),
    (_put({"type": "Strip", "content": "ab", "start": 1, "stop": 0}, "decoder", "decoders", 3),
     r"decoder.decoders\[3\].content: expected one character"),
    (_put({"strategy": "BatchLongest", "direction": "Right", "pad_id": 0}, "padding"),
     r"padding: unsupported component: padding"),
    (_put({"max_length": 0, "direction": "Right", "strategy": "LongestFirst", "stride": 0}, "truncation"),
     r"truncation.max_length: 0 is out of range"),
    (_put({"max_length": 8, "direction": "Right", "strategy": "LongestFirst", "stride": 2}, "truncation"),
     r"truncation.stride: unsupported component"),
    (_put({"x": 1}, "extra_field"), r"extra_field: unsupported component: unknown field"),
    (_del("normalizer", "type"), r"normalizer.type: missing"),
]


@pytest.mark.parametrize("edit,message", MALFORMED)
def test_malformed_tokenizer_json_names_the_field(llava_json, edit, message):
    with pytest.raises(ValueError, match=message):
        load_edited(llava_json, edit)


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "null", '{"model": 5}', "\xff"])
def test_not_a_tokenizer_json(text):
    with pytest.raises(ValueError, match="tokenizer.json"):
        unime.Tokenizer.from_str(text)


def test_file_errors_start_with_the_path(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": {"type": "Unigram"}}', encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{path}: tokenizer.json: model"):
        unime.Tokenizer.from_file(path)


def test_unk_token_missing_from_vocab_is_reported_when_needed(llava_json):
    def edit(j):
        j["model"].update(unk_token="<nope>", byte_fallback=False)

    tok = load_edited(llava_json, edit)
    assert tok.encode("Hello", add_special_tokens=False) == [22557]
    with pytest.raises(ValueError, match='unk_token "<nope>" is not in the vocabulary'):
        tok.encode("Hello \U000E0041")  # not in the vocabulary; tokenizers fails here too


def _tiny_bpe(**kwargs):
    hf = HFTokenizer(models.BPE(**kwargs))
    hf.pre_tokenizer = pre_tokenizers.Split(" ", behavior="removed")
    return hf


@pytest.mark.parametrize("kind", ["prefix", "suffix"])
def test_subword_prefix_and_suffix_match_tokenizers(kind):
    if kind == "prefix":
        vocab = {t: i for i, t in enumerate(["a", "b", "c", "##a", "##b", "##c", "ab", "abc", "##bc", "[U]"])}
        merges = [("a", "##b"), ("ab", "##c"), ("##b", "##c")]
        hf = _tiny_bpe(vocab=vocab, merges=merges, continuing_subword_prefix="##", unk_token="[U]")
    else:
        vocab = {t: i for i, t in enumerate(["a", "b", "c", "a</w>", "b</w>", "c</w>", "ab</w>", "bc</w>", "[U]"])}
        merges = [("a", "b</w>"), ("b", "c</w>")]
        hf = _tiny_bpe(vocab=vocab, merges=merges, end_of_word_suffix="</w>", unk_token="[U]")
    ours = unime.Tokenizer.from_str(hf.to_str())
    for text in ["abc", "a b c", "cab", "bca", "abcabc", "ab ab bc", "xax", "", "c"]:
        assert ours.encode(text) == hf.encode(text).ids, text
