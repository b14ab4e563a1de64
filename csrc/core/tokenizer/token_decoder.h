// Decoders of tokenizer.json ("decoder"): token strings -> text, for decode().
//
// Supported: Sequence, Replace (String pattern), ByteFallback, Fuse, Strip, ByteLevel, Metaspace.
// Others are refused with an InvalidInputError naming the type. Each works on the list of token
// strings like tokenizers' decode_chain; the final text is their concatenation.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace unime::core {

class TokenDecoder {
 public:
  virtual ~TokenDecoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<TokenDecoder> make_token_decoder(const nlohmann::json& config, const std::string& where);

}  // namespace unime::core
