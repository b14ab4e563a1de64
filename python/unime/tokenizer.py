"""unime.Tokenizer: Hugging Face tokenizer.json tokenization in the C++ core.

Same ids as the Rust `tokenizers` library for the components the backbones use (BPE with merges,
byte fallback and unk; byte-level BPE with the Qwen2 / Llama-3 / GPT-2 split regexes; NFC;
legacy Prepend/Replace and Metaspace; added tokens with all their flags; TemplateProcessing;
the usual decoders). Anything else in a tokenizer.json is refused at load with a ValueError naming
the component. See docs/tokenizer.md.
"""

from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence, Union

from . import _C

Text = Union[str, bytes]


class Tokenizer:
    """A loaded tokenizer.json. Thread-safe; encode_batch runs on several threads without the GIL.

    Inputs are str (or UTF-8 bytes). Invalid input raises ValueError: bytes that are not valid
    UTF-8 (the message gives the byte offset), a str with a lone surrogate, or a text longer than
    ``max_input_chars`` characters (checked before any tokenization; 0 disables the limit).
    """

    def __init__(self, impl: "_C.Tokenizer"):
        if not isinstance(impl, _C.Tokenizer):
            raise TypeError("use Tokenizer.from_file(path) or Tokenizer.from_str(json)")
        self._impl = impl

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike]) -> "Tokenizer":
        """Load a tokenizer.json file (FileNotFoundError if absent, ValueError if malformed)."""
        return cls(_C.Tokenizer.from_file(os.fspath(path)))

    @classmethod
    def from_str(cls, json: str) -> "Tokenizer":
        """Load tokenizer.json content from a string."""
        return cls(_C.Tokenizer.from_str(json))

    def encode(self, text: Text, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``; add_special_tokens applies the post-processor (e.g. BOS)."""
        return self._impl.encode(text, add_special_tokens)

    def encode_batch(
        self, texts: Iterable[Text], add_special_tokens: bool = True, num_threads: int = 0
    ) -> list[list[int]]:
        """encode() of each text, on ``num_threads`` threads (0: all cores), GIL released."""
        if not isinstance(texts, (list, tuple)):
            texts = list(texts)
        if num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {num_threads}")
        return self._impl.encode_batch(texts, add_special_tokens, num_threads)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``; ids with no token are skipped (as in tokenizers)."""
        return self._impl.decode(list(ids), skip_special_tokens)

    def decode_batch(self, batch: Iterable[Sequence[int]], skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(ids, skip_special_tokens) for ids in batch]

    def token_to_id(self, token: str) -> Optional[int]:
        return self._impl.token_to_id(token)

    def id_to_token(self, id: int) -> Optional[str]:
        return self._impl.id_to_token(id)

    def vocab_size(self, with_added_tokens: bool = True) -> int:
        """Distinct tokens: the model's, plus added tokens that are not in it."""
        return self._impl.vocab_size(with_added_tokens)

    @property
    def special_tokens(self) -> list[tuple[str, int]]:
        """(content, id) of the added tokens marked special."""
        return self._impl.special_tokens()

    @property
    def max_input_chars(self) -> int:
        return self._impl.max_input_chars

    @max_input_chars.setter
    def max_input_chars(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"max_input_chars must be >= 0 (0: no limit), got {limit}")
        self._impl.max_input_chars = limit

    def enable_truncation(self, max_length: int, direction: str = "right") -> None:
        """Cut encodings to ``max_length`` ids, special tokens included (right: keep the start)."""
        if max_length <= 0:
            raise ValueError(f"max_length must be positive, got {max_length}")
        self._impl.truncation = (max_length, direction)

    def no_truncation(self) -> None:
        self._impl.truncation = None

    @property
    def truncation(self) -> Optional[dict]:
        t = self._impl.truncation
        return None if t is None else {"max_length": t[0], "direction": t[1]}

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size()})"
