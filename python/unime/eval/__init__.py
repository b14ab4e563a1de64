"""Evaluation: MMEB, image-text retrieval (Flickr30K / MSCOCO), SugarCrepe and zero-shot
classification, from the official file formats on disk (or the hub through `datasets`).

    run = unime.eval.Evaluation(model, "runs/eval")
    run.mmeb("MMEB-eval", "MMEB-eval/images")
    run.retrieval("flickr30k", "flickr30k_test.jsonl", "flickr30k-images")
    run.sugarcrepe("sugar-crepe/data", "coco/val2017")
    print(run.report())   # results.md, results.json and charts/*.png in runs/eval

The metrics (metrics.py) work on any scores: precision_at_1, recall_at_k, ndcg_at_k, pairwise_accuracy.
"""

from .data import RowError
from .metrics import (Score, ndcg_at_k, pairwise_accuracy, precision_at_1, recall_at_k, recall_at_k_single,
                      top_k_accuracy)
from .run import Evaluation

__all__ = ["Evaluation", "RowError", "Score", "precision_at_1", "recall_at_k", "recall_at_k_single", "ndcg_at_k",
           "pairwise_accuracy", "top_k_accuracy"]
