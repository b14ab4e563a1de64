// The Hugging Face <-> unime name table of the Llama / Mistral decoder.
#pragma once

#include "model/weight_map.h"

namespace unime::model {

// Rules below the decoder's root on both sides ("layers.{L}.self_attn.q_proj.weight"); wrappers add
// their prefixes with WeightMap::with_prefixes ("model." in LlamaForCausalLM checkpoints).
const WeightMap& decoder_weight_map();

}  // namespace unime::model
