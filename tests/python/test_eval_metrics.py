"""unime.eval.metrics against independent computations: scikit-learn where it has the metric, the
official scorers' numpy (MMEB's argmax) and hand-built cases with known answers, ties and empty lists."""

import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score, top_k_accuracy_score

from unime.eval import metrics as m


def random_rows(seed, n=200):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=rng.integers(1, 30)) for _ in range(n)]


def test_precision_at_1_equals_mmeb_argmax():
    rows = random_rows(0)
    expected = np.mean([np.argmax(r) == 0 for r in rows])  # MMEB's get_pred: argmax over candidates
    got = m.precision_at_1(rows)
    assert got.value == pytest.approx(expected) and got.scored == len(rows) and got.left_out == 0


def test_precision_at_1_ties_and_empty_rows():
    rows = [[0.5, 0.5, 0.1], [0.2, 0.9], [0.7], [], [0.3, 0.3]]
    # first: a tie with the correct candidate (listed first) is a hit, as np.argmax decides it
    first = m.precision_at_1(rows)
    assert (first.value, first.scored, first.left_out) == (3 / 4, 4, 1)
    assert m.precision_at_1(rows, ties="pessimistic").value == 1 / 4  # only the single-candidate row
    assert m.precision_at_1(rows, ties="optimistic").value == 3 / 4
    empty = m.precision_at_1([[], []])
    assert math.isnan(empty.value) and empty.left_out == 2
    with pytest.raises(ValueError, match="ties must be one of"):
        m.precision_at_1(rows, ties="random")
    with pytest.raises(ValueError, match="row 1 contain NaN"):
        m.precision_at_1([[1.0], [np.nan, 0.0]])


@pytest.mark.parametrize("k", [1, 5, 10])
def test_recall_single_positive_equals_sklearn_top_k(k):
    rng = np.random.default_rng(k)
    scores = rng.normal(size=(300, 40))
    labels = rng.integers(0, 40, 300)
    expected = top_k_accuracy_score(labels, scores, k=k, labels=np.arange(40))
    assert m.recall_at_k_single(scores, labels, (k,))[k].value == pytest.approx(expected)
    assert m.recall_at_k(scores, [[int(x)] for x in labels], (k,))[k].value == pytest.approx(expected)
    assert m.top_k_accuracy(scores, labels, (k,))[k].value == pytest.approx(expected)


def test_recall_any_of_several_positives_equals_brute_force():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(50, 250))  # 50 images x 250 captions, 5 per image
    positives = [list(range(5 * i, 5 * i + 5)) for i in range(50)]
    for k in (1, 5, 10):
        top = np.argsort(-scores, axis=1)[:, :k]
        expected = np.mean([bool(set(top[q]) & set(positives[q])) for q in range(50)])
        assert m.recall_at_k(scores, positives, (k,))[k].value == pytest.approx(expected)


def test_recall_ties_and_queries_without_positives():
    scores = np.array([[1.0, 1.0, 1.0, 0.0],
                       [0.0, 2.0, 2.0, 2.0],
                       [3.0, 0.0, 0.0, 0.0]])
    positives = [[2], [1], []]
    first = m.recall_at_k(scores, positives, (1, 2, 3))
    # row 0: positive index 2 behind two ties -> rank 2; row 1: index 1 first of the tie -> rank 0
    assert [first[k].value for k in (1, 2, 3)] == [0.5, 0.5, 1.0]
    assert first[1].scored == 2 and first[1].left_out == 1
    pess = m.recall_at_k(scores, positives, (1, 3), ties="pessimistic")
    assert (pess[1].value, pess[3].value) == (0.0, 1.0)
    opt = m.recall_at_k(scores, positives, (1,), ties="optimistic")
    assert opt[1].value == 1.0
    nothing = m.recall_at_k(scores, [[], [], []], (1,))
    assert math.isnan(nothing[1].value) and nothing[1].left_out == 3
    with pytest.raises(ValueError, match="out of range"):
        m.recall_at_k(scores, [[4], [], []])


@pytest.mark.parametrize("seed", range(3))
def test_ndcg_at_5_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    relevance = rng.integers(0, 4, size=(60, 30)).astype(float)
    relevance[:, 0] = 1  # every query has something relevant (sklearn scores the others as 0)
    continuous = rng.normal(size=(60, 30))
    assert m.ndcg_at_k(continuous, relevance, 5).value == pytest.approx(ndcg_score(relevance, continuous, k=5))
    tied = rng.integers(0, 3, size=(60, 30)).astype(float)  # many ties: sklearn averages over them
    assert m.ndcg_at_k(tied, relevance, 5, ties="average").value == pytest.approx(ndcg_score(relevance, tied, k=5))


def test_ndcg_hand_built_ties_and_empty():
    scores = np.array([[0.9, 0.9, 0.1], [0.5, 0.4, 0.3]])
    relevance = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # query 0: the relevant candidate ties with an irrelevant one listed first
    first = m.ndcg_at_k(scores, relevance, 5)
    assert first.value == pytest.approx(1 / np.log2(3)) and (first.scored, first.left_out) == (1, 1)
    assert m.ndcg_at_k(scores, relevance, 5, ties="optimistic").value == pytest.approx(1.0)
    assert m.ndcg_at_k(scores, relevance, 5, ties="average").value == pytest.approx((1 + 1 / np.log2(3)) / 2)
    assert m.ndcg_at_k(scores, relevance, 1).value == 0.0
    with pytest.raises(ValueError, match="shape"):
        m.ndcg_at_k(scores, relevance[:, :2])


def test_pairwise_accuracy_counts_ties_as_wrong():
    acc = m.pairwise_accuracy([0.9, 0.5, 0.2, 0.7], [0.1, 0.5, 0.3, 0.6])
    assert (acc.value, acc.scored) == (0.5, 4)
    rng = np.random.default_rng(0)
    p, n = rng.normal(size=1000), rng.normal(size=1000)
    assert m.pairwise_accuracy(p, n).value == pytest.approx(np.mean(p > n))
    empty = m.pairwise_accuracy([], [])
    assert math.isnan(empty.value) and empty.scored == 0
