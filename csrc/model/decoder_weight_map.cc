#include "model/decoder_weight_map.h"

namespace unime::model {

// Module paths below the decoder equal Hugging Face's names below "model.", projections fused or
// not (q_proj or qkv_proj, gate_up_proj): prefix rules pass every parameter (weights, biases, LoRA
// adapters) through unchanged.
const WeightMap& decoder_weight_map() {
  static const WeightMap map(std::vector<WeightRule>{
      {"embed_tokens", "embed_tokens"},
      {"layers.{L}", "layers.{L}"},
      {"norm", "norm"},
  });
  return map;
}

}  // namespace unime::model
