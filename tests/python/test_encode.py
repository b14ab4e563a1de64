"""unime.encode end to end against the Hugging Face pipeline (LlavaNextProcessor + model, 4.48.3):
the real Mistral v1 tokenizer (LLaVA-1.6's vocabulary, from mistral-common), UniME's prompts, a tiny
random LLaVA-NeXT. Same token ids, same pixels, same embeddings."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_models import save_tiny_llava_next_pipeline
from tokenizer_assets import tokenizer_json
from tolerances import assert_embeddings_match

import unime

IMAGE_PROMPT = "[INST] <image>\nSummary above image in one word: [/INST]"
TEXT_PROMPT = "[INST] {}\nSummary above sentence in one word: [/INST]"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llava_pipeline")
    hf, processor = save_tiny_llava_next_pipeline(path, tokenizer_json("mistral_legacy"))
    return hf, processor, unime.Model.from_pretrained(path)


def images(seed=0):
    rng = np.random.default_rng(seed)
    sizes = [(40, 70), (70, 33), (17, 90), (9, 13), (56, 56)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def hf_embed(hf, processor, prompts, imgs):
    inputs = processor(text=prompts, images=imgs or None, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**inputs, output_hidden_states=True).hidden_states[-1]
    return F.normalize(hidden[:, -1], dim=-1), inputs


def test_ids_pixels_and_embeddings_match_transformers(pipeline):
    hf, processor, model = pipeline
    imgs = images()
    texts = ["A dog runs across the park.", "Ünïcödé, 数字 123 and code: x = f(y)!", "short"]
    # A mixed batch: image-only, text-only and image+text inputs.
    items = [(None, imgs[0]), (texts[0], None), (None, imgs[1]), (texts[1], None), (None, imgs[2]),
             (texts[2], None), ("What is in the picture?", imgs[4]), (None, imgs[3])]

    def prompt(t, im):
        if t is not None and im is not None:
            return f"<image>\n{t}\n"  # image+text: the MMEB form
        return IMAGE_PROMPT if im is not None else TEXT_PROMPT.format(t)

    prompts = [prompt(t, im) for t, im in items]
    ref, inputs = hf_embed(hf, processor, prompts, [im for _, im in items if im is not None])

    arrays = [np.asarray(im) if im is not None else None for _, im in items]
    batch = model.process([t for t, _ in items], arrays)  # the C++ processor: what the model receives
    ids, mask, ours_images = batch.input_ids, batch.attention_mask, batch.images
    assert torch.equal(ids, inputs["input_ids"]), "token ids differ from LlavaNextProcessor's"
    assert torch.equal(mask, inputs["attention_mask"])
    for k, (pixels, h, w) in enumerate(ours_images):
        assert [h, w] == inputs["image_sizes"][k].tolist()
        torch.testing.assert_close(pixels, inputs["pixel_values"][k, : pixels.shape[0]], atol=1e-6, rtol=0)

    ours = unime.encode(model, [t for t, _ in items], [im for _, im in items], batch_size=3)
    assert_embeddings_match(ours, ref, "encode vs transformers")


def test_encode_accepts_paths_arrays_tensors_and_returns_numpy(pipeline, tmp_path):
    _, _, model = pipeline
    img = images()[0]
    img.save(tmp_path / "a.png")
    arr = np.array(img)  # a writable copy (torch.from_numpy warns on read-only arrays)
    outs = [model.encode(images=x) for x in (str(tmp_path / "a.png"), img, arr, torch.from_numpy(arr).permute(2, 0, 1))]
    assert outs[0].shape == (model.hidden_size,)
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], atol=0, rtol=0)
    as_numpy = model.encode(texts=["a", "b"], output="numpy")
    assert isinstance(as_numpy, np.ndarray) and as_numpy.shape == (2, model.hidden_size)


def test_instruction_and_pairs_use_the_mmeb_form(pipeline):
    hf, processor, model = pipeline
    img = images()[1]
    instruction = "Represent the given image with the following question:"
    ref, _ = hf_embed(hf, processor, [f"<image>\n{instruction} What is shown?\n"], [img])
    ours = unime.encode(model, ["What is shown?"], [img], instruction=instruction)
    assert_embeddings_match(ours, ref, "MMEB form")


def test_corrupt_image_is_named_or_skipped(pipeline, tmp_path):
    _, _, model = pipeline
    good = images()[2]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match=r"image 1 .*broken\.jpg"):
        model.encode(images=[good, str(bad), good])
    emb, skipped = model.encode(images=[good, str(bad), good], on_error="skip")
    assert [s.index for s in skipped] == [1] and "broken.jpg" in skipped[0].source
    assert torch.isnan(emb[1]).all() and torch.isfinite(emb[[0, 2]]).all()
    torch.testing.assert_close(emb[0], emb[2])


def test_encode_from_a_path_with_dtype(pipeline):
    _, _, model = pipeline
    ref = model.encode(texts=["a red car"])
    ours = unime.encode(model.path, texts=["a red car"], dtype="bfloat16")
    assert ours.dtype == torch.float32 and (ours - ref).abs().max() < 0.05  # bf16 compute, float32 out
    with pytest.raises(ValueError, match="already loaded"):
        unime.encode(model, texts=["a"], dtype="bfloat16")


def test_argument_errors(pipeline):
    _, _, model = pipeline
    with pytest.raises(ValueError, match="same length"):
        model.encode(texts=["a", "b"], images=[images()[0]])
    with pytest.raises(ValueError, match="nothing to encode"):
        model.encode()
    with pytest.raises(ValueError, match="image placeholder"):
        model.encode(texts=["look <image> here"], images=[images()[0]])


def test_sentence_transformers_conventions(pipeline, capsys):
    """encode's sentence-transformers names: {"text", "image"} inputs, convert_to_numpy / convert_to_tensor,
    normalize_embeddings, show_progress_bar (tqdm), encode_query / encode_document."""
    model = pipeline[2]
    imgs = images()
    texts = ["a red car", "two dogs"]
    plain = model.encode(texts, [imgs[0], None], instruction="Find the match.")
    dicts = model.encode([{"text": "a red car", "image": imgs[0]}, {"text": "two dogs"}], instruction="Find the match.")
    torch.testing.assert_close(dicts, plain, atol=0, rtol=0)
    one = model.encode({"image": imgs[1]})
    assert one.shape == (model.hidden_size,)
    torch.testing.assert_close(one, model.encode(images=imgs[1]), atol=0, rtol=0)

    as_numpy = model.encode(texts, convert_to_numpy=True)
    assert isinstance(as_numpy, np.ndarray) and np.allclose(as_numpy, model.encode(texts).cpu().numpy())
    assert isinstance(model.encode(texts, convert_to_numpy=True, convert_to_tensor=True), torch.Tensor)
    raw = model.encode(texts, normalize_embeddings=False)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(F.normalize(raw, dim=-1), model.encode(texts), atol=1e-6, rtol=0)

    model.encode(texts * 3, batch_size=2, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "unime.encode" in err and "6/6" in err
    model.encode(texts * 3, batch_size=2, show_progress_bar=False)
    assert capsys.readouterr().err == ""

    torch.testing.assert_close(model.encode_query(texts, instruction="Find the match."),
                               model.encode(texts, instruction="Find the match."), atol=0, rtol=0)
    torch.testing.assert_close(model.encode_document(images=imgs[:2]), model.encode(images=imgs[:2]), atol=0, rtol=0)

    with pytest.raises(ValueError, match="unknown key"):
        model.encode([{"txt": "a"}])
    with pytest.raises(ValueError, match="inside the dicts"):
        model.encode([{"text": "a"}], images=[imgs[0]])
    with pytest.raises(ValueError, match="conflicts"):
        model.encode(texts, output="numpy", convert_to_tensor=True)
