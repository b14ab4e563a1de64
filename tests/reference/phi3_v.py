"""Phi-3.5-V in plain PyTorch, written from the specification (shared/reference/backbones.md section B),
with transformers' CLIPVisionModel and Phi3ForCausalLM as its parts. It is the oracle the tests compare
unime with; it was itself checked against the original remote code through the outputs cached in
tests/data/phi3_v/ (test_phi3_v.py::test_reference_is_the_original).

Images (B.4): portrait images transposed; the number of 336-px columns is the largest `scale` with
scale * ceil(scale / ratio) <= num_crops; PIL bilinear resize to (int(336 * scale / ratio), 336 * scale);
white rows above and below to a multiple of 336 (top = half, rounded down); transposed back;
uint8 -> float / 255, minus the mean, over the std; a bicubic 336 x 336 thumbnail of that (no
antialias); then the crops row by row. Tokens per image: (rows * cols + 1) * 144 + 1 + (rows + 1) * 12.

Model (B.3): CLIP's hidden state `layer_idx` (-2) without CLS; each crop's 24 x 24 patches merged 2 x 2
(cell (i, j) = patches (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1) concatenated); the crops tiled
into a (12 rows) x (12 cols) grid with sub_GN after every grid row, then glb_GN, then the global
image's 12 x 12 grid with sub_GN after every row; Linear -> GELU (erf) -> Linear; written over the
token embeddings of the image's -1 ids; the Phi-3 decoder (LongRoPE) on those embeddings.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

CROP = 336
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def hd_canvas(image: np.ndarray, num_crops: int) -> Image.Image:
    img = Image.fromarray(image)
    width, height = img.size
    transposed = width < height
    if transposed:
        img = img.transpose(Image.TRANSPOSE)
        width, height = img.size
    ratio = width / height
    scale = 1
    while scale * math.ceil(scale / ratio) <= num_crops:
        scale += 1
    scale -= 1
    new_w = int(scale * CROP)
    new_h = int(new_w / ratio)
    img = img.resize((new_w, new_h), Image.BILINEAR)
    target = int(math.ceil(new_h / CROP) * CROP)
    canvas = Image.new("RGB", (new_w, target), (255, 255, 255))
    canvas.paste(img, (0, (target - new_h) // 2))
    return canvas.transpose(Image.TRANSPOSE) if transposed else canvas


def num_image_tokens(height: int, width: int) -> int:
    rows, cols = height // CROP, width // CROP
    return (rows * cols + 1) * 144 + 1 + (rows + 1) * 12


def preprocess(image: np.ndarray, num_crops: int, mean=CLIP_MEAN, std=CLIP_STD):
    """-> (pixels (1 + rows * cols, 3, 336, 336): the global thumbnail first, then the crops; (H, W) of the canvas)."""
    canvas = np.array(hd_canvas(image, num_crops))
    hd = torch.from_numpy(canvas).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    hd = hd.sub(torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)).div(
        torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))
    h, w = hd.shape[1:]
    thumbnail = F.interpolate(hd[None], size=(CROP, CROP), mode="bicubic", align_corners=False)
    crops = hd.reshape(1, 3, h // CROP, CROP, w // CROP, CROP).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, CROP, CROP)
    return torch.cat([thumbnail, crops]), (h, w)


def token_ids(tokenizer, prompt: str, image_tokens: int | None) -> list[int]:
    """The prompt cut at <|image_1|>, each piece tokenized on its own (BOS each), -1 ids between.
    `tokenizer`: a tokenizers.Tokenizer with the checkpoint's tokenizer.json."""
    tag = "<|image_1|>"
    if image_tokens is None:
        return tokenizer.encode(prompt).ids
    before, after = prompt.split(tag)
    return tokenizer.encode(before).ids + [-1] * image_tokens + tokenizer.encode(after).ids


class Phi3VReference(nn.Module):
    def __init__(self, config: dict, attn_implementation: str | None = None):
        """attn_implementation: transformers' attention for both parts ("sdpa" for speed on a GPU);
        None: eager for Phi-3, transformers' default for CLIP."""
        from transformers import CLIPVisionConfig, CLIPVisionModel, Phi3Config, Phi3ForCausalLM

        super().__init__()
        text = {k: v for k, v in config.items()
                if k not in ("model_type", "architectures", "embd_layer", "img_processor", "torch_dtype")}
        self.lm = Phi3ForCausalLM(Phi3Config(**text, attn_implementation=attn_implementation or "eager"))
        vision = dict(config["img_processor"].get("vision_config", {}))
        if attn_implementation:
            vision["attn_implementation"] = attn_implementation
        self.clip = CLIPVisionModel(CLIPVisionConfig(**vision))
        self.layer_idx = config["img_processor"].get("layer_idx", -2)
        c = self.clip.config.hidden_size
        d = config["hidden_size"]
        self.glb_GN = nn.Parameter(torch.zeros(1, 1, 4 * c))
        self.sub_GN = nn.Parameter(torch.zeros(1, 1, 1, 4 * c))
        self.img_projection = nn.Sequential(nn.Linear(4 * c, d), nn.GELU(), nn.Linear(d, d))

    # The released checkpoint's names (backbones.md B.2) <-> this module's.
    def released_names(self) -> dict[str, str]:
        out = {}
        for name, _ in self.named_parameters():
            if name.startswith("lm.model."):
                out["model." + name[len("lm.model."):]] = name
            elif name.startswith("lm."):
                out[name[len("lm."):]] = name
            elif name.startswith("clip.vision_model."):
                out["model.vision_embed_tokens.img_processor.vision_model." + name[len("clip.vision_model."):]] = name
            else:
                out["model.vision_embed_tokens." + name] = name
        return out

    def image_features(self, pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
        hidden = self.clip(pixels.to(self.glb_GN.dtype), output_hidden_states=True).hidden_states[self.layer_idx]
        patches = hidden[:, 1:]
        n, length, c = patches.shape
        side = int(length ** 0.5)
        half = side // 2
        merged = patches.reshape(n, half, 2, half, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(n, half, half, 4 * c)

        def rows_with_separator(grid):
            sep = self.sub_GN.reshape(1, 1, 4 * c).expand(grid.shape[0], 1, 4 * c)
            return torch.cat([grid, sep], dim=1).reshape(-1, 4 * c)

        rows, cols = height // CROP, width // CROP
        tiles = merged[1:1 + rows * cols].reshape(rows, cols, half, half, 4 * c)
        tiles = tiles.permute(0, 2, 1, 3, 4).reshape(rows * half, cols * half, 4 * c)
        glb = self.glb_GN.reshape(1, 4 * c)
        sequence = torch.cat([rows_with_separator(tiles), glb, rows_with_separator(merged[0])])
        return self.img_projection(sequence)

    def last_token_state(self, tokenizer, prompt: str, image, num_crops: int) -> torch.Tensor:
        """One input as the original processor takes it: the final hidden state of its last token
        (float32), the image (if any) preprocessed for `num_crops` and sent to this model's device."""
        param = self.glb_GN
        if image is None:
            ids, images = token_ids(tokenizer, prompt, None), []
        else:
            pixels, (h, w) = preprocess(image, num_crops)
            ids = token_ids(tokenizer, prompt, num_image_tokens(h, w))
            images = [(pixels.to(device=param.device, dtype=param.dtype), h, w)]
        ids = torch.tensor([ids], device=param.device)
        return self.last_hidden_state(ids, torch.ones_like(ids), images)[0, -1].float()

    def last_hidden_state(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, images) -> torch.Tensor:
        """input_ids (B, L) with -1 runs for the images, in order; images: [(pixels, height, width)]."""
        embeds = self.lm.model.embed_tokens(input_ids.clamp_min(0))
        if images:
            features = torch.cat([self.image_features(p, h, w) for p, h, w in images]).to(embeds.dtype)
            embeds = embeds.masked_scatter((input_ids == -1).unsqueeze(-1), features)
        # The LM head on the last position only: its logits are not used, and an embedding model skips them.
        out = self.lm(inputs_embeds=embeds, attention_mask=attention_mask, output_hidden_states=True,
                      num_logits_to_keep=1)
        return out.hidden_states[-1]
