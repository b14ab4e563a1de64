"""unime.integrations.mteb: mteb's own evaluator (mteb.evaluate) on small local tasks, built here from
in-memory data (no hub), with a tiny random LLaVA-NeXT. The similarities mteb saves as predictions
and the main score it reports must equal what unime's embeddings give when computed here with numpy:
that proves the adapter hands mteb the right vectors for each side, with the right instruction."""

import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tiny_models import save_tiny_llava_next_pipeline
from tokenizer_assets import tokenizer_json

import unime
from unime.integrations.mteb import MTEB_VERSION, MtebEncoder, as_mteb_model

mteb = pytest.importorskip("mteb", reason=f"mteb is not installed (pip install mteb=={MTEB_VERSION})")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (requirements.txt) provides the photos")

from datasets import Dataset  # noqa: E402  (mteb requires datasets; after the skip on purpose)
from mteb.abstasks.retrieval import AbsTaskRetrieval  # noqa: E402
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData  # noqa: E402
from mteb.abstasks.task_metadata import TaskMetadata  # noqa: E402
from mteb.abstasks.zeroshot_classification import AbsTaskZeroShotClassification  # noqa: E402
from mteb.types import PromptType  # noqa: E402

# ---- data: real photographs with captions, and a small text corpus ---------------------------------

PHOTOS = {  # skimage.data name -> caption
    "astronaut": "An astronaut in a white spacesuit poses in front of the American flag.",
    "chelsea": "A ginger tabby cat looks to the side.",
    "coffee": "A cup of coffee with latte art on a saucer.",
    "rocket": "A rocket stands on its launch pad under a clear sky.",
    "hubble_deep_field": "Thousands of distant galaxies in the deep field of space.",
    "immunohistochemistry": "A stained tissue sample under the microscope.",
}
QUESTIONS = ["Who is in the picture?", "What animal is this?", "What drink is shown?", "What is about to launch?",
             "What do we see in the sky?", "What kind of image is this?"]
ANSWERS = ["an astronaut", "a cat", "coffee", "a rocket", "galaxies", "a microscope slide"]
DISTRACTORS = ["A red bicycle leans against a brick wall.", "Snow covers a quiet mountain village."]

TEXT_QUERIES = {
    "q1": "What is the capital of France?",
    "q2": "How do plants make food?",
    "q3": "Who wrote Hamlet?",
    "q4": "What is the boiling point of water?",
}
TEXT_CORPUS = [  # (id, title, text)
    ("d1", "Paris", "Paris is the capital and largest city of France."),
    ("d2", "", "Lyon is a city in France known for its cuisine."),
    ("d3", "Photosynthesis", "Plants turn light, water and carbon dioxide into sugar."),
    ("d4", "", "Chlorophyll absorbs light in the leaves of plants."),
    ("d5", "Hamlet", "Hamlet is a tragedy written by William Shakespeare."),
    ("d6", "", "Shakespeare was born in Stratford-upon-Avon."),
    ("d7", "Water", "At sea level water boils at 100 degrees Celsius."),
    ("d8", "", "Ice melts at zero degrees Celsius."),
]
TEXT_QRELS = {  # graded: nDCG uses the grades as gains
    "q1": {"d1": 2, "d2": 1, "d8": 0},
    "q2": {"d3": 2, "d4": 1},
    "q3": {"d5": 2, "d6": 1},
    "q4": {"d7": 1},
}

TEXT_PROMPT = "Retrieve the passage that answers the question."
I2T_PROMPT = "Find an image caption describing the given image."
T2I_PROMPT = "Find me an everyday image that matches the given caption."
IT2T_PROMPT = "Represent the given image with the following question:"


def photos() -> list[Image.Image]:
    # Downscaled: the tiny model's tiles are 28 px, and full-size photos only cost time.
    out = []
    for name in PHOTOS:
        im = Image.fromarray(getattr(skimage_data, name)())
        im.thumbnail((160, 160))
        out.append(im)
    return out


def metadata(name, task_type, category, modalities, main_score, prompt=None) -> TaskMetadata:
    return TaskMetadata(
        name=name, description="unime adapter test task.", reference=None, type=task_type, category=category,
        modalities=modalities, prompt=prompt, main_score=main_score, eval_splits=["test"], eval_langs=["eng-Latn"],
        dataset={"path": "unime/local", "revision": "1"}, date=("2024-01-01", "2024-01-01"), domains=[],
        task_subtypes=[], license="cc-by-4.0", annotations_creators="derived", dialect=[], sample_creation="found",
        bibtex_citation="",
    )


class TextRetrieval(AbsTaskRetrieval):
    metadata = metadata("UnimeTestTextRetrieval", "Retrieval", "t2t", ["text"], "ndcg_at_10",
                        prompt={"query": TEXT_PROMPT})

    def load_data(self, num_proc=None, **kwargs):
        split = RetrievalSplitData(
            queries=Dataset.from_dict({"id": list(TEXT_QUERIES), "text": list(TEXT_QUERIES.values())}),
            corpus=Dataset.from_dict({"id": [d for d, _, _ in TEXT_CORPUS], "title": [t for _, t, _ in TEXT_CORPUS],
                                      "text": [x for _, _, x in TEXT_CORPUS]}),
            relevant_docs=TEXT_QRELS, top_ranked=None)
        self.dataset = {"default": {"test": split}}
        self.data_loaded = True


def image_split(category: str) -> RetrievalSplitData:
    """i2t: photo -> its caption (distractor captions in the corpus); t2i: caption -> photo;
    it2t: photo + question -> answer."""
    ims, captions, n = photos(), list(PHOTOS.values()), len(PHOTOS)
    qids, dids = [f"q{i}" for i in range(n)], [f"d{i}" for i in range(n)]
    if category == "i2t":
        queries = {"id": qids, "image": ims}
        corpus = {"id": dids + ["x0", "x1"], "text": captions + DISTRACTORS}
    elif category == "t2i":
        queries = {"id": qids, "text": captions}
        corpus = {"id": dids, "image": ims}
    else:
        queries = {"id": qids, "text": QUESTIONS, "image": ims}
        corpus = {"id": dids, "text": ANSWERS}
    return RetrievalSplitData(queries=Dataset.from_dict(queries), corpus=Dataset.from_dict(corpus),
                              relevant_docs={q: {d: 1} for q, d in zip(qids, dids)}, top_ranked=None)


def image_retrieval_task(category: str, prompt: str) -> AbsTaskRetrieval:
    class ImageRetrieval(AbsTaskRetrieval):
        metadata = metadata(f"UnimeTestAny2Any{category.upper()}", "Any2AnyRetrieval", category, ["image", "text"],
                            "ndcg_at_10", prompt={"query": prompt})

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = {"default": {"test": image_split(category)}}
            self.data_loaded = True

    return ImageRetrieval()


LABELS = ["a photo of an astronaut", "a photo of a cat", "a cup of coffee", "a rocket", "galaxies in space",
          "tissue under a microscope"]


class ZeroShot(AbsTaskZeroShotClassification):
    metadata = metadata("UnimeTestZeroShot", "ZeroShotClassification", "i2t", ["image", "text"], "accuracy")

    def load_data(self, num_proc=None, **kwargs):
        self.dataset = {"test": Dataset.from_dict({"image": photos(), "label": list(range(len(LABELS)))})}
        self.data_loaded = True

    def get_candidate_labels(self):
        return LABELS


# ---- helpers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llava_mteb")
    save_tiny_llava_next_pipeline(path, tokenizer_json("mistral_legacy"))
    return unime.Model.from_pretrained(path)


def run(encoder, task, tmp_path):
    """mteb.evaluate without the results cache; returns (main score, saved predictions)."""
    result = mteb.evaluate(encoder, task, cache=None, prediction_folder=tmp_path, show_progress_bar=False,
                           encode_kwargs={"batch_size": 4, "show_progress_bar": False})  # 4: several batches
    assert not result.exceptions
    (task_result,) = result.task_results
    with open(os.path.join(tmp_path, f"{task.metadata.name}_predictions.json")) as f:
        predictions = json.load(f)["default"]["test"]
    return task_result.get_score(), predictions


def ndcg_at_10(scores: np.ndarray, qids, dids, qrels) -> float:
    """trec_eval's ndcg_cut_10 (the graded relevance is the gain), averaged over queries."""
    values = []
    for i, q in enumerate(qids):
        ranked = np.argsort(-scores[i], kind="stable")[:10]
        dcg = sum(qrels[q].get(dids[j], 0) / np.log2(r + 2) for r, j in enumerate(ranked))
        ideal = sorted((g for g in qrels[q].values() if g > 0), reverse=True)[:10]
        values.append(dcg / sum(g / np.log2(r + 2) for r, g in enumerate(ideal)))
    return float(np.mean(values))


def assert_predictions(predictions, scores, qids, dids):
    """mteb's saved query -> document scores are our cosine similarities, for every pair."""
    got = np.array([[predictions[q][d] for d in dids] for q in qids])
    np.testing.assert_allclose(got, scores, atol=1e-5, rtol=0)


# ---- mteb's evaluator vs numpy on unime's embeddings ---------------------------------------------------


def test_text_retrieval_matches_numpy(model, tmp_path):
    score, predictions = run(as_mteb_model(model), TextRetrieval(), tmp_path)

    qids, dids = list(TEXT_QUERIES), [d for d, _, _ in TEXT_CORPUS]
    # A document is its title and text, as mteb joins them; queries carry the task's query prompt.
    docs = [f"{t} {x}".strip() for _, t, x in TEXT_CORPUS]
    q = model.encode(list(TEXT_QUERIES.values()), instruction=TEXT_PROMPT, output="numpy")
    d = model.encode(docs, output="numpy")
    scores = q @ d.T
    assert_predictions(predictions, scores, qids, dids)
    assert score == pytest.approx(ndcg_at_10(scores, qids, dids, TEXT_QRELS), abs=1e-5)

    # The instruction matters: without it the queries (and so the scores) are other vectors.
    bare = model.encode(list(TEXT_QUERIES.values()), output="numpy")
    assert np.abs(bare @ d.T - scores).max() > 1e-3


@pytest.mark.parametrize("category, prompt", [("i2t", I2T_PROMPT), ("t2i", T2I_PROMPT), ("it2t", IT2T_PROMPT)],
                         ids=["i2t", "t2i", "it2t"])
def test_image_retrieval_matches_numpy(model, tmp_path, category, prompt):
    task = image_retrieval_task(category, prompt)
    score, predictions = run(as_mteb_model(model), task, tmp_path)

    split = image_split(category)
    queries, corpus = split["queries"], split["corpus"]

    def column(ds, name):
        return ds[name] if name in ds.column_names else None

    # Images come back from the datasets PNG round trip pixel for pixel; queries get the instruction,
    # documents none; "it2t" queries are image+text inputs.
    q = model.encode(column(queries, "text"), column(queries, "image"), instruction=prompt, output="numpy")
    d = model.encode(column(corpus, "text"), column(corpus, "image"), output="numpy")
    scores = q @ d.T
    assert_predictions(predictions, scores, queries["id"], corpus["id"])
    assert score == pytest.approx(ndcg_at_10(scores, queries["id"], corpus["id"], split["relevant_docs"]), abs=1e-5)


@pytest.mark.filterwarnings("ignore:Precision is ill-defined")  # a random model misses whole classes
def test_zero_shot_image_classification_matches_numpy(model, tmp_path):
    score, probs = run(as_mteb_model(model), ZeroShot(), tmp_path)

    images = model.encode(images=photos(), output="numpy")
    labels = model.encode(LABELS, output="numpy")
    logits = 100 * images @ labels.T  # mteb's image-text zero-shot: softmax(100 * cosine) over the labels
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(np.array(probs), expected, atol=1e-4, rtol=0)
    assert score == pytest.approx(float(np.mean(logits.argmax(1) == np.arange(len(LABELS)))), abs=1e-5)


# ---- instruction routing ----------------------------------------------------------------------------


class Recorder:
    """A unime.Model that records each encode call's inputs and instruction."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def encode(self, texts=None, images=None, **options):
        self.calls.append((texts, images, options.get("instruction")))
        return self.model.encode(texts, images, **options)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def instruction_of(self, text):
        found = {instruction for texts, _, instruction in self.calls for t in texts or [] if t == text}
        assert len(found) == 1, (text, found)
        return found.pop()


def test_queries_get_the_task_prompt_and_documents_none(model, tmp_path):
    recorder = Recorder(model)
    run(as_mteb_model(recorder, batch_size=3), TextRetrieval(), tmp_path)
    assert {recorder.instruction_of(q) for q in TEXT_QUERIES.values()} == {TEXT_PROMPT}
    assert {recorder.instruction_of(f"{t} {x}".strip()) for _, t, x in TEXT_CORPUS} == {None}
    # Forward passes of batch_size inputs, pooled across mteb's batches of 4: queries 3+1, documents 3+3+2.
    assert sorted(len(texts) for texts, _, _ in recorder.calls) == [1, 2, 3, 3, 3]


def test_own_instructions_override_the_task_prompt(model, tmp_path):
    recorder = Recorder(model)
    encoder = as_mteb_model(recorder, instructions={"UnimeTestTextRetrieval-query": "Q:", "document": "D:",
                                                    "Retrieval": "unused: the task-name key comes first"})
    run(encoder, TextRetrieval(), tmp_path)
    assert {recorder.instruction_of(q) for q in TEXT_QUERIES.values()} == {"Q:"}
    assert {recorder.instruction_of(f"{t} {x}".strip()) for _, t, x in TEXT_CORPUS} == {"D:"}

    recorder.calls.clear()
    run(as_mteb_model(recorder, use_task_prompts=False), TextRetrieval(), tmp_path / "bare")
    assert {recorder.instruction_of(q) for q in TEXT_QUERIES.values()} == {None}


def test_instruction_resolution_order(model):
    encoder = MtebEncoder(model)
    text = TextRetrieval.metadata
    assert encoder.instruction_for(text, PromptType.query) == TEXT_PROMPT
    assert encoder.instruction_for(text, PromptType.document) is None
    assert encoder.instruction_for(text, "query") == TEXT_PROMPT  # a plain str works as well
    assert encoder.instruction_for(text, None) is None  # a dict prompt has nothing for symmetric inputs

    symmetric = metadata("UnimeTestSTS", "STS", "t2t", ["text"], "cosine_spearman", prompt="Retrieve similar text.")
    assert encoder.instruction_for(symmetric, None) == "Retrieve similar text."
    assert encoder.instruction_for(symmetric, PromptType.document) is None  # a str prompt is never a document's

    own = MtebEncoder(model, instructions={"STS": "type", "query": "any query", "UnimeTestSTS": None,
                                           "Retrieval-document": "retrieval documents"})
    assert own.instruction_for(symmetric, None) is None  # task name before task type; None: no instruction
    assert own.instruction_for(text, PromptType.query) == "any query"  # before the task's own prompt
    assert own.instruction_for(text, PromptType.document) == "retrieval documents"
    assert own.instruction_for(metadata("UnimeTestOther", "STS", "t2t", ["text"], "cosine_spearman"), None) == "type"


def test_model_meta(model):
    meta = as_mteb_model(model, name="org/tiny", meta={"license": "apache-2.0"}).mteb_model_meta
    assert meta.name == "org/tiny" and meta.license == "apache-2.0"
    assert meta.embed_dim == model.hidden_size and meta.modalities == ["image", "text"]
    assert meta.n_parameters == sum(t.numel() for _, t in model.named_parameters())
    assert as_mteb_model(model).mteb_model_meta.name == f"unime/{os.path.basename(model.path)}"


def test_missing_mteb_names_the_install_command(model, monkeypatch):
    # The module imports without mteb; making an encoder says what to install.
    monkeypatch.setitem(sys.modules, "mteb", None)
    monkeypatch.delitem(sys.modules, "unime.integrations.mteb")  # restored afterwards, with the package attribute:
    monkeypatch.setattr(sys.modules["unime.integrations"], "mteb", sys.modules["unime.integrations"].mteb)
    module = importlib.import_module("unime.integrations.mteb")
    with pytest.raises(ImportError, match=f"pip install mteb=={MTEB_VERSION}"):
        module.as_mteb_model(model)


def test_import_unime_does_not_import_mteb():
    code = "import sys, unime, unime.integrations.mteb; assert 'mteb' not in sys.modules, 'mteb imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
