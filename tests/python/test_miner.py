"""The hard-negative miner against the whole-matrix reference (tests/reference/miner.py), the
streaming merge, and the cross-rank gather that keeps the local gradient (unime.distributed)."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from reference import losses as ref_losses
from reference import miner as ref

from unime import distributed, ops


def devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def unit(*shape, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1).to(dtype).to(device)


def assert_same_result(ours, theirs):
    idx, score = ours
    ref_idx, ref_score = theirs
    assert torch.equal(idx.cpu(), ref_idx.cpu())
    torch.testing.assert_close(score.cpu(), ref_score.cpu(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("q,n,d,k,chunk", [(1, 1, 4, 1, 8192), (7, 100, 33, 5, 17), (50, 300, 16, 8, 64)])
def test_miner_matches_reference(device, dtype, q, n, d, k, chunk):
    query, corpus = unit(q, d, dtype=dtype, device=device), unit(n, d, dtype=dtype, device=device, seed=1)
    assert_same_result(ops.mine_hard_negatives(query, corpus, k, chunk_size=chunk),
                       ref.mine_hard_negatives(query, corpus, k))


@pytest.mark.parametrize("device", devices())
def test_miner_exclusions_match_reference(device):
    query, corpus = unit(40, 24, device=device), unit(230, 24, device=device, seed=1)
    positive = torch.randint(0, 230, (40,), generator=torch.Generator().manual_seed(2)).to(device)
    exclude = torch.randint(-1, 230, (40, 3), generator=torch.Generator().manual_seed(3)).to(device)
    query_ids = torch.randint(0, 20, (40,), generator=torch.Generator().manual_seed(4)).to(device)
    corpus_ids = torch.randint(0, 20, (230,), generator=torch.Generator().manual_seed(5)).to(device)
    max_score = (query * corpus[positive]).sum(-1) + 0.1
    ours = ops.mine_hard_negatives(query, corpus, 9, positive=positive, beta=0.1, exclude=exclude,
                                   query_ids=query_ids, corpus_ids=corpus_ids, chunk_size=50)
    theirs = ref.mine_hard_negatives(query, corpus, 9, max_score=max_score,
                                     exclude=torch.cat([positive[:, None], exclude], 1),
                                     query_ids=query_ids, corpus_ids=corpus_ids)
    assert_same_result(ours, theirs)
    idx = ours[0]
    assert not (idx == positive[:, None]).any()
    got = idx.clamp_min(0)
    assert ((corpus_ids[got] != query_ids[:, None]) | (idx < 0)).all()


def test_miner_pads_when_fewer_than_k_survive_and_everything_filtered():
    query, corpus = unit(3, 8), unit(5, 8, seed=1)
    idx, score = ops.mine_hard_negatives(query, corpus, 8)
    assert (idx[:, :5] >= 0).all() and (idx[:, 5:] == -1).all() and torch.isneginf(score[:, 5:]).all()
    idx, score = ops.mine_hard_negatives(query, corpus, 4, max_score=torch.full((3,), -2.0))
    assert (idx == -1).all() and torch.isneginf(score).all()


def test_miner_ties_and_duplicates_resolve_by_lower_index():
    # Dyadic values: every dot product is exact in fp32 whatever the BLAS kernel's summation order, so
    # the identical rows 4..9 tie exactly on any CPU (random floats differed by an ulp between tiles on
    # an AVX-512 machine's BLAS).
    query = torch.tensor([[1.0, 1, 0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0, 0, 0]]) / 2
    dup = (torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]) / 4).expand(6, 8)  # score 0.25 for both queries
    small = torch.randint(-2, 3, (4, 8), generator=torch.Generator().manual_seed(4)).float() / 64  # |score| <= 1/32
    corpus = torch.cat([small, dup]).contiguous()
    for chunk in (3, 4, 8192):  # ties across tile borders too
        idx, _ = ops.mine_hard_negatives(query, corpus, 3, chunk_size=chunk)
        assert idx.tolist() == [[4, 5, 6], [4, 5, 6]]
        assert_same_result((idx, _), ref.mine_hard_negatives(query, corpus, 3))


def test_miner_streaming_over_pieces_equals_one_call():
    query, corpus = unit(30, 16), unit(500, 16, seed=1)
    ids_q = torch.arange(30) % 7
    ids_c = torch.arange(500) % 7 + 3
    pieces = torch.split(corpus, [120, 1, 200, 179])
    id_pieces = torch.split(ids_c, [120, 1, 200, 179])
    ours = ops.mine_hard_negatives_streaming(query, pieces, 6, corpus_ids=id_pieces, query_ids=ids_q,
                                             exclude=torch.full((30, 1), 250), chunk_size=64)
    whole = ops.mine_hard_negatives(query, corpus, 6, corpus_ids=ids_c, query_ids=ids_q,
                                    exclude=torch.full((30, 1), 250))
    assert_same_result(ours, whole)


def test_miner_positive_beta_reads_the_positives_row_of_an_offset_piece():
    # A piece holding global rows 100..159: the ceiling must come from corpus[positive - 100].
    query, corpus = unit(12, 16), unit(60, 16, seed=1)
    positive = torch.randint(100, 160, (12,), generator=torch.Generator().manual_seed(2))
    ours = ops.mine_hard_negatives(query, corpus, 5, positive=positive, beta=0.05, index_offset=100, chunk_size=16)
    max_score = (query * corpus[positive - 100]).sum(-1) + 0.05
    theirs = ref.mine_hard_negatives(query, corpus, 5, max_score=max_score, exclude=positive[:, None], index_offset=100)
    assert_same_result(ours, theirs)


def test_miner_positive_outside_the_piece_refuses_beta():
    query, corpus = unit(4, 8), unit(10, 8, seed=1)
    positive = torch.tensor([3, 12, -1, 5])  # query 1's positive lives in another piece
    outside = r"positive\[1, 0\] = 12 is not in this corpus piece \[0, 10\).*positive_scores"
    with pytest.raises(ValueError, match=outside):
        ops.mine_hard_negatives(query, corpus, 2, positive=positive, beta=0.1)
    with pytest.raises(ValueError, match=r"positive\[0, 0\] = 3 is not in this corpus piece \[10, 20\)"):
        ops.mine_hard_negatives(query, corpus, 2, positive=positive, beta=0.1, index_offset=10)
    # Without beta the positives are only excluded, wherever they are.
    idx, _ = ops.mine_hard_negatives(query, corpus, 10, positive=positive)
    assert not (idx == positive[:, None]).any()


def test_miner_query_without_a_positive_gets_no_ceiling():
    query, corpus = unit(3, 8), unit(20, 8, seed=1)
    positive = torch.tensor([4, -1, 7])
    ours = ops.mine_hard_negatives(query, corpus, 6, positive=positive, beta=-0.2)
    pos_score = (query * corpus[positive.clamp_min(0)]).sum(-1) - 0.2
    max_score = torch.where(positive >= 0, pos_score, torch.full_like(pos_score, float("inf")))
    assert_same_result(ours, ref.mine_hard_negatives(query, corpus, 6, max_score=max_score, exclude=positive[:, None]))


def test_miner_streaming_with_positive_scores_equals_one_call():
    query, corpus = unit(30, 16), unit(400, 16, seed=1)
    positive = torch.randint(0, 400, (30,), generator=torch.Generator().manual_seed(2))
    pieces = torch.split(corpus, [150, 1, 249])
    whole = ops.mine_hard_negatives(query, corpus, 7, positive=positive, beta=0.02, chunk_size=64)
    scores = (query * corpus[positive]).sum(-1)
    ours = ops.mine_hard_negatives_streaming(query, pieces, 7, positive=positive, beta=0.02, positive_scores=scores,
                                             chunk_size=64)
    assert_same_result(ours, whole)
    with pytest.raises(ValueError, match="is not in this corpus piece"):
        ops.mine_hard_negatives_streaming(query, pieces, 7, positive=positive, beta=0.02)


def test_miner_ceiling_argument_errors():
    query, corpus = unit(4, 8), unit(10, 8, seed=1)
    positive = torch.tensor([1, 2, 3, 4])
    with pytest.raises(ValueError, match="either beta .* or max_score, not both"):
        ops.mine_hard_negatives(query, corpus, 2, positive=positive, beta=0.1, max_score=torch.zeros(4))
    with pytest.raises(ValueError, match="beta needs positive .* or positive_scores"):
        ops.mine_hard_negatives(query, corpus, 2, beta=0.1)
    with pytest.raises(ValueError, match="positive_scores is only used with beta"):
        ops.mine_hard_negatives(query, corpus, 2, positive_scores=torch.zeros(4))
    with pytest.raises(ValueError, match=r"positive_scores must have shape \(4,\)"):
        ops.mine_hard_negatives(query, corpus, 2, beta=0.1, positive_scores=torch.zeros(4, 1))
    with pytest.raises(ValueError, match="max_score contains NaN"):
        ops.mine_hard_negatives(query, corpus, 2, max_score=torch.tensor([0.0, float("nan"), 0.0, 0.0]))
    idx, _ = ops.mine_hard_negatives(query, corpus, 10, max_score=torch.full((4,), float("inf")))
    assert (idx >= 0).all()  # +inf: no ceiling


def test_miner_strided_inputs_opcheck_and_no_gradient():
    query = unit(10, 40)[::2, 1:30]
    corpus = unit(29, 33, seed=1).T  # (33, 29) transposed view
    assert_same_result(ops.mine_hard_negatives(query, corpus, 4, chunk_size=7),
                       ref.mine_hard_negatives(query, corpus, 4))
    torch.library.opcheck(torch.ops.unime.mine_hard_negatives.default,
                          (query.contiguous(), corpus.contiguous(), 4, None, torch.zeros(5, 1, dtype=torch.long),
                           None, None, 0, 7))
    idx, score = ops.mine_hard_negatives(query.requires_grad_(), corpus, 2)
    assert not score.requires_grad and idx.dtype == torch.long


def test_miner_errors():
    query, corpus = unit(4, 8), unit(10, 8, seed=1)
    with pytest.raises(ValueError, match=r"corpus must have shape \(N, 8\)"):
        ops.mine_hard_negatives(query, unit(10, 7), 2)
    with pytest.raises(ValueError, match="k must be >= 1"):
        ops.mine_hard_negatives(query, corpus, 0)
    with pytest.raises(ValueError, match="query_ids and corpus_ids come together"):
        ops.mine_hard_negatives(query, corpus, 2, query_ids=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"exclude must be an int64 \(4, m\)"):
        ops.mine_hard_negatives(query, corpus, 2, exclude=torch.zeros(4, 2))
    bad = corpus.clone()
    bad[3, 3] = float("nan")
    with pytest.raises(ValueError, match="mine_hard_negatives: corpus contains NaN or Inf"):
        ops.mine_hard_negatives(query, bad, 2)


@pytest.mark.gpu
def test_miner_cuda_matches_cpu():
    query, corpus = unit(300, 64), unit(5000, 64, seed=1)
    cpu = ops.mine_hard_negatives(query, corpus, 16, chunk_size=1000)
    gpu = ops.mine_hard_negatives(query.cuda(), corpus.cuda(), 16, chunk_size=1000)
    assert (gpu[0].cpu() == cpu[0]).float().mean() > 0.999  # cuBLAS vs BLAS rounding may swap near-ties
    torch.testing.assert_close(gpu[1].cpu(), cpu[1], atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
def test_miner_cuda_takes_any_k():
    # Past k ~ 3000 (float64) the picks would not fit the default 48 KB of shared memory per block;
    # they live in global memory, so any k runs (slowly: k rounds over each tile).
    query, corpus = unit(20, 16, dtype=torch.float64), unit(9000, 16, dtype=torch.float64, seed=1)
    cpu = ops.mine_hard_negatives(query, corpus, 4000, chunk_size=3000)
    gpu = ops.mine_hard_negatives(query.cuda(), corpus.cuda(), 4000, chunk_size=3000)
    assert (gpu[0].cpu() == cpu[0]).float().mean() > 0.999
    torch.testing.assert_close(gpu[1].cpu(), cpu[1])


# ---- gathering across ranks ---------------------------------------------------------------------


def test_gather_with_grad_is_identity_without_a_group_and_with_world_size_one(tmp_path):
    x = unit(3, 4).requires_grad_()
    assert distributed.gather_with_grad(x) is x and distributed.loss_scale() == 1
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        y = distributed.gather_with_grad(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.equal(g, torch.ones_like(x)) and distributed.loss_scale() == 1
    finally:
        dist.destroy_process_group()


def _rank_main(rank, world, port, q, c, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    b = q.shape[0] // world
    local_q = q[rank * b:(rank + 1) * b].clone().requires_grad_()
    local_c = c[rank * b:(rank + 1) * b].clone().requires_grad_()
    loss = ops.hard_negative_infonce(distributed.gather_with_grad(local_q), distributed.gather_with_grad(local_c), k=3)
    (loss * distributed.loss_scale()).backward()
    # DDP averages parameter gradients over ranks: rank r contributes (its shard's gradient) / world.
    torch.save((loss.detach(), local_q.grad / world, local_c.grad / world), os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_gather_with_grad_two_gloo_ranks_give_the_global_gradient(tmp_path):
    q, c = unit(8, 16), unit(8, 16, seed=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank_main, args=(2, port, q, c, str(tmp_path)), nprocs=2, join=True)
    qq, cc = q.clone().requires_grad_(), c.clone().requires_grad_()
    full = ops.hard_negative_infonce(qq, cc, k=3)
    full.backward()
    torch.testing.assert_close(full, ref_losses.hard_negative_infonce(q, c, k=3)[0])
    for rank in range(2):
        loss, gq, gc = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(loss, full.detach())
        torch.testing.assert_close(gq, qq.grad[rank * 4:(rank + 1) * 4], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(gc, cc.grad[rank * 4:(rank + 1) * 4], atol=1e-6, rtol=1e-5)
