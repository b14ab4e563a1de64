// Precompiled header of the LibTorch layer (csrc/ops, csrc/model, csrc/train): the heavy headers
// every translation unit there includes. Keep it to headers that change only with torch.
#pragma once
#include <ATen/ATen.h>
#include <torch/library.h>
#include <torch/nn/module.h>
