"""A plain reference trainer written from the libraries the field uses, no unime code: transformers
(the model), peft (the LoRA adapters), torch.optim.AdamW, transformers' warmup schedules through
LambdaLR, torch.nn.utils.clip_grad_norm_, and the objectives' plain formulas (reference/losses.py).
Embeddings are hidden_states[-1] at the last token of left-padded inputs, L2-normalised (UniME's).
No GradCache: the whole batch is one autograd graph.
"""

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

from reference import losses

SCHEDULES = {"linear": get_linear_schedule_with_warmup, "cosine": get_cosine_schedule_with_warmup}


class ReferenceTrainer:
    def __init__(self, hf_model, processor, target_regex, adapters, config):
        """adapters: {peft saved name ("base_model.model.<hf path>.lora_A.weight"): tensor} to start from."""
        self.config = config
        self.processor = processor
        lora = LoraConfig(r=config["lora_r"], lora_alpha=config["lora_alpha"], lora_dropout=0.0,
                          target_modules=target_regex, use_rslora=config.get("use_rslora", False))
        self.model = get_peft_model(hf_model, lora)
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for key, value in adapters.items():
                live = key.replace(".lora_A.", ".lora_A.default.").replace(".lora_B.", ".lora_B.default.")
                named[live].copy_(value)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        assert len(self.params) == len(adapters)
        self.opt = torch.optim.AdamW(self.params, lr=config["learning_rate"], betas=(0.9, 0.999),
                                     eps=config["adam_epsilon"], weight_decay=config["weight_decay"])
        if config["lr_schedule"] == "constant":
            self.sched = get_constant_schedule_with_warmup(self.opt, config["warmup_steps"])
        else:
            self.sched = SCHEDULES[config["lr_schedule"]](self.opt, config["warmup_steps"], config["max_steps"])

    def embed(self, prompts, images=None):
        """prompts with "<image>" where an image goes (LLaVA-NeXT), one image per such prompt."""
        inputs = self.processor(text=prompts, images=images or None, padding=True, return_tensors="pt")
        inputs = inputs.to(next(self.model.parameters()).device)
        hidden = self.model(**inputs, output_hidden_states=True).hidden_states[-1]
        return F.normalize(hidden[:, -1], dim=-1)

    def step(self, loss_fn):
        loss = loss_fn(self)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.config["max_grad_norm"])
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad()
        return loss.item()

    def adapters(self):
        return {k.replace(".default", ""): p.detach().clone()
                for k, p in self.model.named_parameters() if p.requires_grad}


def distill_loss(c):
    return lambda student, teacher: losses.similarity_kl(student, F.normalize(teacher, dim=-1),
                                                         c["distill_temperature"], c["kl_direction"], c["kl_reduction"])


def instruct_loss(c):
    return lambda q, p: losses.hard_negative_infonce(q, p, None, c["hard_negatives"], c["false_negative_margin"],
                                                     c["temperature"])[0]


def judge_loss(c):
    return lambda q, cand, scores: losses.judge_alignment(q, cand, scores, c["temperature"], c["judge_eps"])
