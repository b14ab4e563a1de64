"""The results as the papers lay them out: markdown tables (scores x 100) and bar charts."""

from __future__ import annotations

import os

from . import mmeb, sugarcrepe


def _pct(value: float) -> str:
    return "–" if value != value else f"{100 * value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _suite(results: list[dict], suite: str) -> list[dict]:
    return [r for r in results if r["suite"] == suite]


def render_markdown(results: list[dict], record: dict) -> str:
    m = record["model"]
    lines = ["# unime evaluation", "",
             f"Model `{m['path']}` (fingerprint `{m['fingerprint']}`, {m['model_type']}), {m['dtype']} on "
             f"{m['device']}; "
             f"image resolution: {record['image_resolution'] or 'the processor default'}; batch size "
             f"{record['batch_size']}.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()) + ".", ""]
    runs = _suite(results, "mmeb")
    if runs:
        s = mmeb.summarise(runs)
        lines += ["## MMEB (Precision@1)", "",
                  "Overall is the mean over datasets (VLM2Vec, UniME-V2, the leaderboard); UniME v1's Table 1 reports "
                  "the mean of the four meta-task means, given in the last column.", ""]
        lines += _table(["Cls", "VQA", "Ret", "Grd", "IND", "OOD", "Overall", "Overall (meta-task mean)"],
                        [[_pct(s[k]) for k in ("Classification", "VQA", "Retrieval", "Grounding", "IND", "OOD",
                                               "Overall", "Overall (meta-task mean)")]])
        lines += _table(["Dataset", "Meta-task", "Split", "P@1", "Rows", "Left out"],
                        [[r["dataset"], r["meta_task"], r["distribution"], _pct(r["metrics"]["precision@1"]),
                          str(r["rows"]), str(len(r["errors"]))] for r in runs])
    runs = _suite(results, "retrieval")
    if runs:
        ks = sorted(int(k.split("@")[1]) for k in runs[0]["metrics"] if k.startswith("t2i_R@"))
        lines += ["## Image-text retrieval (recall@k)", "", "T2I: text query -> image; I2T: image query -> text "
                  "(a hit when any of its captions ranks in the top k).", ""]
        lines += _table(["Dataset", *[f"T2I R@{k}" for k in ks], *[f"I2T R@{k}" for k in ks], "I2T NDCG@5",
                         "Images", "Captions", "Left out"],
                        [[r["dataset"], *[_pct(r["metrics"][f"t2i_R@{k}"]) for k in ks],
                          *[_pct(r["metrics"][f"i2t_R@{k}"]) for k in ks], _pct(r["metrics"]["i2t_NDCG@5"]),
                          str(r["images"]), str(r["captions"]), str(len(r["errors"]))] for r in runs])
    runs = _suite(results, "sugarcrepe")
    if runs:
        groups = sugarcrepe.summarise(runs)
        lines += ["## SugarCrepe (accuracy)", ""]
        lines += _table(list(groups), [[_pct(v) for v in groups.values()]])
        lines += _table(["Subset", "Accuracy", "Items", "Left out"],
                        [[r["dataset"], _pct(r["metrics"]["accuracy"]), str(r["items"]), str(len(r["errors"]))]
                         for r in runs])
    runs = _suite(results, "zero_shot")
    if runs:
        ks = sorted({k for r in runs for k in r["metrics"]})
        lines += ["## Zero-shot classification (accuracy)", ""]
        lines += _table(["Dataset", *ks, "Images", "Classes", "Left out"],
                        [[r["dataset"], *[_pct(r["metrics"].get(k, float("nan"))) for k in ks], str(r["images"]),
                          str(r["classes"]), str(len(r["errors"]))] for r in runs])
    errors = [(r["dataset"], e) for r in results for e in r["errors"]]
    if errors:
        lines += [f"## Rows left out ({len(errors)})", ""]
        lines += [f"- {name}: {e['where']}: {e['message']}" for name, e in errors[:50]]
        if len(errors) > 50:
            lines.append(f"- ... and {len(errors) - 50} more (results/*.json lists all)")
        lines.append("")
    return "\n".join(lines)


def _bar_chart(path: str, title: str, labels: list[str], values: list[float], ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(labels) + 1.5), 3.6))
    bars = ax.bar(range(len(labels)), [100 * v for v in values], color="#4c72b0")
    ax.bar_label(bars, labels=[_pct(v) for v in values], fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3
                  else "center", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_charts(results: list[dict], folder: str) -> list[str]:
    """One bar chart per MMEB meta-task present (and the summary), one per other suite; returns the paths."""
    os.makedirs(folder, exist_ok=True)
    written = []

    def chart(name, title, labels, values, ylabel):
        path = os.path.join(folder, name)
        _bar_chart(path, title, labels, values, ylabel)
        written.append(path)

    runs = _suite(results, "mmeb")
    for task in [*mmeb.META_TASKS, "Other"]:
        mine = [r for r in runs if r["meta_task"] == task]
        if mine:
            chart(f"mmeb_{task.lower()}.png", f"MMEB {task}", [r["dataset"] for r in mine],
                  [r["metrics"]["precision@1"] for r in mine], "Precision@1 (%)")
    if runs:
        s = mmeb.summarise(runs)
        keys = [k for k in s if s[k] == s[k]]
        chart("mmeb_summary.png", "MMEB", keys, [s[k] for k in keys], "Precision@1 (%)")
    runs = _suite(results, "retrieval")
    if runs:
        labels = [f"{r['dataset']} {d}" for r in runs for d in ("T2I", "I2T")]
        values = [r["metrics"][f"{d}_R@1"] for r in runs for d in ("t2i", "i2t")]
        chart("retrieval.png", "Image-text retrieval", labels, values, "R@1 (%)")
    runs = _suite(results, "sugarcrepe")
    if runs:
        chart("sugarcrepe.png", "SugarCrepe", [r["dataset"] for r in runs], [r["metrics"]["accuracy"] for r in runs],
              "Accuracy (%)")
    runs = _suite(results, "zero_shot")
    if runs:
        chart("zero_shot.png", "Zero-shot classification", [r["dataset"] for r in runs],
              [r["metrics"]["top1"] for r in runs], "Top-1 accuracy (%)")
    return written
