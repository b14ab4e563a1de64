"""The one tolerance table of the test suite (DESIGN.md, "Tests and measurements").

- Pooled embeddings in fp32 against transformers: cosine >= 0.99999 and max abs diff <= 1e-4.
- bf16 / fp16: our error against the fp32 reference at most 2x transformers' own error at that dtype.
- Ops against their plain references: per-dtype atol/rtol (a kernel may reduce in another order).
"""

import torch
import torch.nn.functional as F

EMBEDDING_MIN_COS = 0.99999
EMBEDDING_MAX_ABS = 1e-4
LOW_PRECISION_FACTOR = 2.0

OP_TOL = {
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=1e-6, rtol=1e-6),
    torch.bfloat16: dict(atol=1e-2, rtol=1.6e-2),
    torch.float16: dict(atol=1e-3, rtol=1e-3),
}


def assert_embeddings_match(ours: torch.Tensor, ref: torch.Tensor, what: str = "") -> None:
    """fp32 parity: every row's cosine >= EMBEDDING_MIN_COS and max abs diff <= EMBEDDING_MAX_ABS."""
    ours, ref = ours.float(), ref.float()
    cos = F.cosine_similarity(ours.reshape(-1, ours.shape[-1]), ref.reshape(-1, ref.shape[-1]), dim=-1)
    diff = (ours - ref).abs().max().item()
    print(f"{what}: min cos {cos.min():.8f}, max abs {diff:.2e}")
    assert cos.min() >= EMBEDDING_MIN_COS, f"{what}: min cosine {cos.min():.8f} < {EMBEDDING_MIN_COS}"
    assert diff <= EMBEDDING_MAX_ABS, f"{what}: max abs diff {diff:.2e} > {EMBEDDING_MAX_ABS}"


def assert_within_reference_error(ours_err: float, reference_err: float, what: str = "") -> None:
    """Low precision: our error vs the fp32 truth at most LOW_PRECISION_FACTOR x the reference's own."""
    print(f"{what}: max abs error ours {ours_err:.3e}, transformers {reference_err:.3e}")
    assert ours_err <= LOW_PRECISION_FACTOR * reference_err, f"{what}: {ours_err:.3e} > 2 x {reference_err:.3e}"


def assert_padded_path_matches(model, batch, expected: torch.Tensor, hidden: torch.Tensor, what: str = "") -> None:
    """A processed batch through the padded path (transformers' layout): the pooled embeddings match
    `expected` and the whole last hidden state matches `hidden` on the real tokens."""
    padded = model.encode_ids(batch.input_ids, batch.attention_mask, images=batch.images, packed=False)
    assert_embeddings_match(padded, expected, f"{what} padded")
    full = model.last_hidden_state(batch.input_ids, batch.attention_mask, images=batch.images)
    real = batch.attention_mask.bool()
    diff = (full[real] - hidden[real]).abs().max().item()
    assert diff <= EMBEDDING_MAX_ABS, f"{what}: last hidden state max abs diff {diff:.2e} > {EMBEDDING_MAX_ABS}"
