#include "model/checkpoint_loader.h"

#include <ATen/ATen.h>
#include <cctype>
#include <cstring>
#include <set>
#include <sstream>

#include "core/errors.h"

namespace unime::model {

at::ScalarType to_scalar_type(core::DType dtype) {
  using core::DType;
  switch (dtype) {
    case DType::BOOL:
      return at::kBool;
    case DType::U8:
      return at::kByte;
    case DType::I8:
      return at::kChar;
    case DType::I16:
      return at::kShort;
    case DType::U16:
      return at::kUInt16;
    case DType::F16:
      return at::kHalf;
    case DType::BF16:
      return at::kBFloat16;
    case DType::I32:
      return at::kInt;
    case DType::U32:
      return at::kUInt32;
    case DType::F32:
      return at::kFloat;
    case DType::F64:
      return at::kDouble;
    case DType::I64:
      return at::kLong;
    case DType::U64:
      return at::kUInt64;
    case DType::C64:
      return at::kComplexFloat;
    case DType::F8_E4M3:
      return at::kFloat8_e4m3fn;
    case DType::F8_E5M2:
      return at::kFloat8_e5m2;
    case DType::F8_E8M0:
      return at::kFloat8_e8m0fnu;
    case DType::F8_E4M3FNUZ:
      return at::kFloat8_e4m3fnuz;
    case DType::F8_E5M2FNUZ:
      return at::kFloat8_e5m2fnuz;
  }
  throw InvalidInputError("unknown safetensors dtype");
}

core::DType to_dtype(at::ScalarType type) {
  using core::DType;
  switch (type) {
    case at::kBool:
      return DType::BOOL;
    case at::kByte:
      return DType::U8;
    case at::kChar:
      return DType::I8;
    case at::kShort:
      return DType::I16;
    case at::kUInt16:
      return DType::U16;
    case at::kHalf:
      return DType::F16;
    case at::kBFloat16:
      return DType::BF16;
    case at::kInt:
      return DType::I32;
    case at::kUInt32:
      return DType::U32;
    case at::kFloat:
      return DType::F32;
    case at::kDouble:
      return DType::F64;
    case at::kLong:
      return DType::I64;
    case at::kUInt64:
      return DType::U64;
    case at::kComplexFloat:
      return DType::C64;
    case at::kFloat8_e4m3fn:
      return DType::F8_E4M3;
    case at::kFloat8_e5m2:
      return DType::F8_E5M2;
    case at::kFloat8_e8m0fnu:
      return DType::F8_E8M0;
    case at::kFloat8_e4m3fnuz:
      return DType::F8_E4M3FNUZ;
    case at::kFloat8_e5m2fnuz:
      return DType::F8_E5M2FNUZ;
    default:
      throw InvalidInputError(std::string("dtype ") + c10::toString(type) + " cannot be stored in safetensors");
  }
}

at::Tensor read_tensor(const core::SafetensorsFile& file, const core::TensorInfo& info,
                       std::optional<at::ScalarType> dtype, at::Device device) {
  const auto type = to_scalar_type(info.dtype);
  const auto* bytes = file.data(info);
  // Offsets in the file need not be aligned to the element size; copy such tensors through an
  // aligned buffer so vectorised conversion kernels never read misaligned memory.
  at::Tensor cpu = at::empty(info.shape, at::TensorOptions().dtype(type));
  if (info.nbytes() > 0) std::memcpy(cpu.data_ptr(), bytes, info.nbytes());
  auto target = (dtype && (at::isFloatingType(type) || at::isComplexType(type))) ? *dtype : type;
  return cpu.to(device, target);
}

void save_tensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;  // contiguous CPU copies that outlive the write
  std::vector<core::TensorView> views;
  keep.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    keep.push_back(t.detach().to(at::kCPU).contiguous());
    const auto& c = keep.back();
    views.push_back({name, to_dtype(c.scalar_type()), c.sizes().vec(), c.data_ptr(), c.nbytes()});
  }
  core::write_safetensors(path, views, metadata);
}

std::map<std::string, at::Tensor> load_tensors(const std::string& path) {
  auto checkpoint = core::Checkpoint::open(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& name : checkpoint.names()) {
    auto found = checkpoint.find(name);
    out.emplace(name, read_tensor(*found.file, *found.info, std::nullopt, at::kCPU));
  }
  return out;
}

bool is_adapter_parameter(const std::string& module_path) {
  for (const char* segment : {".lora_A.", ".lora_B."})
    if (module_path.find(segment) != std::string::npos) return true;
  return false;
}

namespace {
// "a.layers.7.b.c" -> "a.layers.0.b.c" (the first ".layers.N." only); "" when there is none or N is 0.
std::string as_layer_zero(const std::string& path) {
  const std::string key = "layers.";
  for (size_t at = path.find(key); at != std::string::npos; at = path.find(key, at + 1)) {
    if (at != 0 && path[at - 1] != '.') continue;
    size_t digits = at + key.size(), end = digits;
    while (end < path.size() && std::isdigit(static_cast<unsigned char>(path[end]))) ++end;
    if (end == digits || end == path.size() || path[end] != '.') continue;
    if (path.compare(digits, end - digits, "0") == 0) return "";
    return path.substr(0, digits) + "0" + path.substr(end);
  }
  return "";
}
}  // namespace

LoadReport load_module(torch::nn::Module& module, const WeightMap& map, const core::Checkpoint& checkpoint,
                       at::ScalarType dtype, at::Device device, const std::vector<std::string>& dropped) {
  auto params = module.named_parameters(/*recurse=*/true);
  std::vector<std::string> missing;
  std::set<std::string> used;
  std::vector<std::pair<at::Tensor, at::Tensor>> assignments;  // (parameter, new value)
  for (const auto& item : params) {
    auto candidates = map.hf_candidates(item.key());
    if (candidates.empty()) throw std::logic_error("no weight-map rule for module parameter " + item.key());
    // The first layout the checkpoint uses (e.g. "language_model.model." or "model.language_model.").
    const std::string* hf = &candidates.front();
    core::CheckpointTensor found;
    for (const auto& name : candidates)
      if ((found = checkpoint.find(name))) {
        hf = &name;
        break;
      }
    if (!found.info) {
      if (is_adapter_parameter(item.key()))
        assignments.emplace_back(item.value(), item.value().detach().to(device));
      else
        missing.push_back(candidates.front());
      continue;
    }
    const auto& info = *found.info;
    if (at::IntArrayRef(info.shape) != item.value().sizes()) {
      std::ostringstream msg;
      msg << found.file->path() << ": tensor '" << *hf << "' has shape " << at::IntArrayRef(info.shape)
          << " but the model expects " << item.value().sizes();
      throw InvalidInputError(msg.str());
    }
    used.insert(*hf);
    assignments.emplace_back(item.value(), read_tensor(*found.file, info, dtype, device));
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw MissingKeyError("checkpoint is missing " + std::to_string(missing.size()) + " tensor(s): " + list);
  }
  for (auto& [param, value] : assignments) param.set_data(value);
  std::set<std::string> module_paths;
  for (const auto& item : params) module_paths.insert(item.key());
  LoadReport report;
  for (const auto& name : checkpoint.names()) {
    if (used.count(name)) continue;
    bool known_unused = map.is_ignorable(name);
    auto path = map.to_module(name);
    if (!known_unused && path)
      for (const auto& prefix : dropped) known_unused = known_unused || path->rfind(prefix, 0) == 0;
    if (!known_unused) {
      auto zero = path ? as_layer_zero(*path) : "";
      known_unused = !zero.empty() && module_paths.count(zero) && !module_paths.count(*path);
    }
    (known_unused ? report.ignored : report.unexpected).push_back(name);
  }
  return report;
}

}  // namespace unime::model
