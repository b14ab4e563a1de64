#include "model/decoder_weight_map.h"

namespace unime::model {

const WeightMap& decoder_weight_map() {
  static const WeightMap map({
          {"embed_tokens.weight", "embed_tokens.weight"},
          {"layers.{L}.input_layernorm.weight", "layers.{L}.input_layernorm.weight"},
          {"layers.{L}.self_attn.q_proj.weight", "layers.{L}.self_attn.q_proj.weight"},
          {"layers.{L}.self_attn.q_proj.bias", "layers.{L}.self_attn.q_proj.bias"},
          {"layers.{L}.self_attn.k_proj.weight", "layers.{L}.self_attn.k_proj.weight"},
          {"layers.{L}.self_attn.k_proj.bias", "layers.{L}.self_attn.k_proj.bias"},
          {"layers.{L}.self_attn.v_proj.weight", "layers.{L}.self_attn.v_proj.weight"},
          {"layers.{L}.self_attn.v_proj.bias", "layers.{L}.self_attn.v_proj.bias"},
          {"layers.{L}.self_attn.o_proj.weight", "layers.{L}.self_attn.o_proj.weight"},
          {"layers.{L}.self_attn.o_proj.bias", "layers.{L}.self_attn.o_proj.bias"},
          {"layers.{L}.post_attention_layernorm.weight", "layers.{L}.post_attention_layernorm.weight"},
          {"layers.{L}.mlp.gate_proj.weight", "layers.{L}.mlp.gate_proj.weight"},
          {"layers.{L}.mlp.gate_proj.bias", "layers.{L}.mlp.gate_proj.bias"},
          {"layers.{L}.mlp.up_proj.weight", "layers.{L}.mlp.up_proj.weight"},
          {"layers.{L}.mlp.up_proj.bias", "layers.{L}.mlp.up_proj.bias"},
          {"layers.{L}.mlp.down_proj.weight", "layers.{L}.mlp.down_proj.weight"},
          {"layers.{L}.mlp.down_proj.bias", "layers.{L}.mlp.down_proj.bias"},
          {"norm.weight", "norm.weight"},
  });
  return map;
}

}  // namespace unime::model
