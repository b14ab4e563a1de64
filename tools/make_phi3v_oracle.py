"""Writes the cached Phi-3.5-V oracle (tests/data/phi3_v/) by running Phi-3.5-V's original code.

    python tools/make_phi3v_oracle.py REMOTE_CODE_DIR

REMOTE_CODE_DIR holds the original remote code: configuration_phi3_v.py, image_embedding_phi3_v.py,
image_processing_phi3_v.py, modeling_phi3_v.py, processing_phi3_v.py (as vendored by VLM2Vec under
src/model/baseline_backbone/phi3_v/, or from the microsoft/Phi-3.5-vision-instruct hub repository).
It is used here only, never copied into unime. The image processor needs torchvision (not a unime
requirement: `pip install --target DIR torchvision==0.26.0` and put DIR on PYTHONPATH).

On the tiny model of tests/python/phi3_v_fixture.py (weights from weight(name)) it records: the image
processor's outputs (shape, image_sizes, token count and the sha256 of the float32 pixels) for each
test image and num_crops; the processor's token ids for each prompt; and the last token's final
hidden state of each example run alone (eager attention, fp32, CPU).
"""

import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

import phi3_v_fixture as fx  # noqa: E402
from tokenizer_assets import tokenizer_json  # noqa: E402


def import_remote(code_dir):
    pkg_root = tempfile.mkdtemp()
    shutil.copytree(code_dir, os.path.join(pkg_root, "phi3_v_remote"))
    open(os.path.join(pkg_root, "phi3_v_remote", "__init__.py"), "a").close()
    sys.path.insert(0, pkg_root)
    mods = {name: importlib.import_module(f"phi3_v_remote.{name}")
            for name in ("configuration_phi3_v", "image_embedding_phi3_v", "image_processing_phi3_v",
                         "modeling_phi3_v", "processing_phi3_v")}
    return mods


def main():
    code_dir = sys.argv[1]
    m = import_remote(code_dir)
    from PIL import Image
    from transformers import CLIPVisionConfig, PreTrainedTokenizerFast

    # The original code builds CLIP from this module constant; the tiny model shrinks it.
    m["image_embedding_phi3_v"].CLIP_VIT_LARGE_PATCH14_336_CONFIG = CLIPVisionConfig(**fx.TINY_CLIP)
    fields = {k: v for k, v in fx.TINY_CONFIG.items() if k not in ("model_type", "architectures", "torch_dtype")}
    fields["img_processor"] = {k: v for k, v in fields["img_processor"].items() if k != "vision_config"}
    config = m["configuration_phi3_v"].Phi3VConfig(**fields, _attn_implementation="eager")
    torch.manual_seed(0)
    model = m["modeling_phi3_v"].Phi3VForCausalLM(config).eval()
    parameters, aliases = {}, {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(fx.weight(name, p.shape))
            parameters[name] = list(p.shape)
    seen = {p.data_ptr(): n for n, p in model.named_parameters()}
    for name, t in model.state_dict().items():
        if name not in parameters and t.data_ptr() in seen:
            aliases[name] = seen[t.data_ptr()]

    oracle = {"source": "Phi-3.5-V original code (VLM2Vec src/model/baseline_backbone/phi3_v), transformers "
                        + __import__("transformers").__version__ + ", torch " + torch.__version__,
              "parameters": parameters, "aliases": aliases, "images": [], "prompts": [], "embeddings": []}

    image_processor_cls = m["image_processing_phi3_v"].Phi3VImageProcessor
    for num_crops in fx.NUM_CROPS:
        proc = image_processor_cls(num_crops=num_crops)
        for seed, h, w in fx.IMAGES:
            out = proc(Image.fromarray(fx.image(seed, h, w)), return_tensors="pt")
            pixels = out["pixel_values"][0].contiguous()
            oracle["images"].append({
                "seed": seed, "height": h, "width": w, "num_crops": num_crops, "shape": list(pixels.shape),
                "image_size": [int(v) for v in out["image_sizes"][0]], "num_img_tokens": int(out["num_img_tokens"][0]),
                "sha256": hashlib.sha256(pixels.numpy().tobytes()).hexdigest(),
                "sum": float(pixels.double().sum()), "global_sum": float(pixels[0].double().sum()),
            })

    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json("phi3")))
    num_crops = 4
    processor = m["processing_phi3_v"].Phi3VProcessor(image_processor_cls(num_crops=num_crops, num_img_tokens=144), tok)
    examples = [(p, None) for p in fx.TEXT_PROMPTS]
    examples += [(p, img) for p in fx.IMAGE_PROMPTS for img in fx.IMAGES[:2]]
    examples += [(fx.IMAGE_PROMPTS[0], img) for img in fx.IMAGES[2:]]
    for prompt, img in examples:
        pil = None if img is None else Image.fromarray(fx.image(*img))
        inputs = processor(prompt, images=pil, return_tensors="pt")
        ids = inputs["input_ids"]
        with torch.no_grad():
            # VLM2Vec's copy takes per-row lists (None for a row without an image).
            kwargs = ({"pixel_values": [None], "image_sizes": [None]} if pil is None else
                      {"pixel_values": [inputs["pixel_values"]], "image_sizes": [inputs["image_sizes"]]})
            hidden = model(input_ids=ids, attention_mask=inputs["attention_mask"], output_hidden_states=True,
                           **kwargs).hidden_states[-1]
        oracle["prompts"].append({"prompt": prompt, "image": img, "num_crops": num_crops, "input_ids": ids[0].tolist()})
        oracle["embeddings"].append(hidden[0, -1].tolist())
    # The same examples with the model in bf16 (eager attention, CPU): the error bf16 makes in the
    # original code, against which unime's bf16 error is judged (at most twice it).
    model = model.to(torch.bfloat16)
    oracle["embeddings_bf16"] = []
    for prompt, img in examples:
        pil = None if img is None else Image.fromarray(fx.image(*img))
        inputs = processor(prompt, images=pil, return_tensors="pt")
        with torch.no_grad():
            kwargs = ({"pixel_values": [None], "image_sizes": [None]} if pil is None else
                      {"pixel_values": [inputs["pixel_values"].to(torch.bfloat16)],
                       "image_sizes": [inputs["image_sizes"]]})
            hidden = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                           output_hidden_states=True, **kwargs).hidden_states[-1]
        oracle["embeddings_bf16"].append(hidden[0, -1].float().tolist())
    os.makedirs(fx.DATA, exist_ok=True)
    with open(os.path.join(fx.DATA, "oracle.json"), "w") as f:
        json.dump(oracle, f)
    print(f"wrote {os.path.join(fx.DATA, 'oracle.json')}: {len(oracle['images'])} images, "
          f"{len(oracle['prompts'])} examples, {len(parameters)} parameters")


if __name__ == "__main__":
    main()
