#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/json_file.h"
#include "core/util/atomic_file.h"
#include "core/util/strings.h"
#include "model/checkpoint_loader.h"
#include "model/lora.h"
#include "train/checkpoint.h"
#include "train/grad_cache.h"
#include "train/objectives.h"
#include "train/peft_format.h"

namespace unime::train {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t StepBatch::size() const {
  if (!texts.empty()) return static_cast<int64_t>(texts.size());
  return static_cast<int64_t>(queries.size());
}

at::Tensor gather_with_grad(Communicator& comm, const at::Tensor& local) {
  if (comm.world_size() == 1) return local;
  auto all = comm.all_gather(local.detach().contiguous());
  const auto n = local.size(0);
  // Every rank's slice as received, except ours, which is `local` itself and keeps its graph.
  std::vector<at::Tensor> parts;
  for (int64_t r = 0; r < comm.world_size(); ++r) parts.push_back(r == comm.rank() ? local : all.narrow(0, r * n, n));
  return at::cat(parts, 0);
}

namespace {

// Autocast on CUDA for the forward passes (bf16 or fp16), as torch.autocast does.
class AutocastScope {
 public:
  AutocastScope(const std::string& precision, c10::Device device) {
    if (precision == "no" || !device.is_cuda()) return;
    active_ = true;
    prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, precision == "bf16" ? at::kBFloat16 : at::kHalf);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
  }

 private:
  bool active_ = false, prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kHalf;
};

std::vector<model::EncodeInput> slice(const std::vector<model::EncodeInput>& v, int64_t begin, int64_t end,
                                      int64_t per_example = 1) {
  return {v.begin() + begin * per_example, v.begin() + end * per_example};
}

// Valid (no NaN) rows of a side's (rows, d) embeddings, grouped per example: (examples,) bool.
at::Tensor valid_examples(const at::Tensor& emb, int64_t per_example) {
  return emb.detach().isnan().any(1).logical_not().view({-1, per_example}).all(1);
}

}  // namespace

Trainer::Trainer(std::shared_ptr<model::EmbeddingModel> model, TrainerConfig config,
                 std::shared_ptr<Communicator> communicator)
    : model_(std::move(model)), config_(std::move(config)), comm_(std::move(communicator)) {
  config_.validate();
  if (config_.stage == Stage::kDistill)
    for (const auto& c : config_.lora_components)
      if (c != "language_model")
        throw InvalidInputError(
            "stage 1 (distill) trains the language model only (its inputs are texts); "
            "lora_components has " +
            core::quote(c));
  if (config_.batch_size % comm_->world_size() != 0)
    throw InvalidInputError("batch_size " + std::to_string(config_.batch_size) + " must divide by the world size " +
                            std::to_string(comm_->world_size()));
  auto& backbone = model_->backbone();
  if (!model::lora_layers(backbone).empty())
    throw InvalidInputError("the model already has LoRA adapters: the trainer adds its own (load a fresh model)");
  for (auto& p : backbone.parameters()) p.set_requires_grad(false);
  if (config_.trainable == "all") {
    // Every parameter of the model trains; stage 1 still runs (and so changes) the language model only.
    for (const auto& p : backbone.named_parameters()) adapted_.push_back(p.key());
  } else {
    adapted_ = model::add_lora(backbone, {config_.lora_targets, config_.lora_regex, config_.lora_components},
                               config_.lora, model::parse_float_dtype(config_.lora_dtype), config_.seed);
  }
  backbone.set_gradient_checkpointing(config_.gradient_checkpointing);
  backbone.train(true);
  auto params = trainable_parameters();
  for (auto& [_, t] : params) t.set_requires_grad(true);
  {
    // Every rank starts from rank 0's weights (the same seed makes them equal already; this guards it).
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> tensors;
    for (auto& [_, t] : params) tensors.push_back(t.detach());
    comm_->broadcast(tensors);
  }
  optimizer_ =
      std::make_unique<AdamW>(params, AdamWOptions{config_.learning_rate, config_.adam_beta1, config_.adam_beta2,
                                                   config_.adam_epsilon, config_.weight_decay});
  if (config_.mixed_precision == "fp16" && model_->device().is_cuda()) loss_scale_ = 65536.0;
  if (comm_->world_size() > 1) {
    std::vector<at::Tensor> trainable;
    for (auto& [_, t] : params) trainable.push_back(t);
    reducer_ = std::make_unique<GradReducer>(trainable, *comm_);
  }
  // The dropout stream of a run starts from its seed; each rank draws its own masks.
  at::manual_seed(config_.seed + static_cast<uint64_t>(comm_->rank()));
}

std::vector<std::pair<std::string, at::Tensor>> Trainer::trainable_parameters() const {
  if (config_.trainable == "all") {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (const auto& p : model_->backbone().named_parameters()) out.emplace_back(p.key(), p.value());
    return out;
  }
  return model::lora_parameters(model_->backbone());
}

model::ProcessOptions Trainer::process_options(bool distill) const {
  model::ProcessOptions o;
  if (distill) {
    o.prompt_kind = core::prompt::PromptKind::kDistill;
    o.text_template = config_.distill_template;
  }
  o.max_length = config_.max_length;
  o.overflow = config_.max_length > 0 ? model::Overflow::kTruncate : model::Overflow::kRefuse;
  o.skip_errors = true;  // failures come back per input; step() decides to raise or skip
  return o;
}

void Trainer::set_num_examples(int64_t n) {
  num_examples_ = n;
  sampler_ = std::make_unique<EpochSampler>(n, config_.batch_size, config_.seed, comm_->rank(), comm_->world_size());
}

std::vector<int64_t> Trainer::next_indices() {
  if (!sampler_) throw InvalidInputError("call set_num_examples(n) before next_indices()");
  return sampler_->next();
}

std::vector<int64_t> Trainer::peek_indices() const {
  if (!sampler_) throw InvalidInputError("call set_num_examples(n) before peek_indices()");
  return sampler_->peek();
}

double Trainer::micro_step(const StepBatch& batch, int64_t begin, int64_t end, double scale,
                           std::vector<SkippedExample>& skipped, int64_t& used, bool last) {
  const auto& c = config_;
  const bool distill = c.stage == Stage::kDistill;
  const int64_t n = end - begin;
  // The sides of this stage: inputs, how many per example, and their encoder.
  struct Side {
    std::vector<model::EncodeInput> inputs;
    int64_t per_example;
    std::unique_ptr<SideEncoder> encoder;
    at::Tensor emb;
  };
  std::vector<Side> sides;
  auto add = [&](const std::vector<model::EncodeInput>& all, int64_t per) {
    if (per == 0) return;
    sides.push_back({slice(all, begin, end, per),
                     per,
                     std::make_unique<SideEncoder>(*model_, process_options(distill), c.chunk_size),
                     {}});
  };
  if (distill) {
    add(batch.texts, 1);
  } else {
    add(batch.queries, 1);
    add(c.stage == Stage::kInstruct ? batch.positives : batch.candidates,
        c.stage == Stage::kInstruct ? 1 : batch.candidates_per_query);
    if (c.stage == Stage::kInstruct) add(batch.negatives, batch.negatives_per_query);
  }
  // Embed every side (pass 1 under GradCache); per-input failures are kept, not thrown.
  std::string first_error;
  std::vector<bool> caller_failed(static_cast<size_t>(n), false);
  for (int64_t i = 0; i < n && !batch.failures.empty(); ++i)
    if (!batch.failures[static_cast<size_t>(begin + i)].empty()) {
      caller_failed[static_cast<size_t>(i)] = true;
      const auto& id = batch.example_ids[static_cast<size_t>(begin + i)];
      if (first_error.empty()) first_error = "example " + id + ": " + batch.failures[static_cast<size_t>(begin + i)];
      skipped.push_back({id, batch.failures[static_cast<size_t>(begin + i)]});
    }
  {
    AutocastScope autocast(c.mixed_precision, model_->device());
    for (auto& side : sides) {
      std::vector<core::ItemError> errors;
      side.emb = side.encoder->embed(side.inputs, &errors);
      for (const auto& e : errors) {
        const auto example = static_cast<int64_t>(e.index) / side.per_example;
        if (caller_failed[static_cast<size_t>(example)]) continue;  // already reported
        const auto& id = batch.example_ids.at(static_cast<size_t>(begin + example));
        if (first_error.empty()) first_error = "example " + id + ": " + e.message;
        skipped.push_back({id, e.message});
      }
    }
  }
  // A failure on any rank stops every rank in "raise" mode (no rank may wait in a collective alone).
  auto failed = at::tensor({first_error.empty() ? 0 : 1}, at::kLong).to(model_->device());
  failed = comm_->all_gather(failed);
  if (c.on_error == "raise" && failed.sum().item<int64_t>() > 0) {
    if (!first_error.empty()) throw InvalidInputError(first_error);
    throw InvalidInputError("another rank failed on one of its examples (its error names it)");
  }
  // Examples whose every input embedded, gathered over ranks with the embeddings.
  auto valid = valid_examples(sides[0].emb, sides[0].per_example);
  for (size_t s = 1; s < sides.size(); ++s) valid = valid & valid_examples(sides[s].emb, sides[s].per_example);
  for (int64_t i = 0; i < n; ++i)
    if (caller_failed[static_cast<size_t>(i)]) valid[i] = false;
  auto valid_all = comm_->all_gather(valid.to(at::kLong)).to(at::kBool);
  auto keep = valid_all.nonzero().squeeze(1);
  used += keep.numel();
  const int64_t d = model_->hidden_size();
  std::vector<at::Tensor> global;
  for (auto& side : sides)
    global.push_back(gather_with_grad(*comm_, side.emb).view({-1, side.per_example, d}).index_select(0, keep));
  at::Tensor loss;
  if (keep.numel() > 0) {
    if (distill) {
      auto teacher = comm_->all_gather(batch.teacher.narrow(0, begin, n).to(model_->device(), at::kFloat).contiguous());
      // The teacher's vectors may come raw: normalise them as the paper's "Pooling -> Normalize".
      teacher = teacher.index_select(0, keep);
      teacher = teacher / teacher.norm(2, 1, true).clamp_min(1e-12);
      loss = distill_loss(global[0].squeeze(1), teacher, c);
    } else if (c.stage == Stage::kInstruct) {
      auto negatives = global.size() > 2 ? global[2] : at::Tensor();
      loss = instruct_loss(global[0].squeeze(1), global[1].squeeze(1), negatives, c);
    } else {
      auto scores = comm_->all_gather(batch.scores.narrow(0, begin, n).to(model_->device(), at::kFloat).contiguous());
      loss = judge_loss(global[0].squeeze(1), global[1], scores.index_select(0, keep), c);
    }
  }
  if (!loss.defined() || !loss.requires_grad()) return loss.defined() ? loss.item<double>() : 0.0;
  // Each rank backpropagates the global loss into its own slice; summing the ranks' gradients
  // (accumulate()) gives the gradient of the global loss. The step's last backward starts that
  // sum bucket by bucket as gradients become final: the loss's own backward when no side is
  // chunked, else the last chunk of the last chunked side.
  int64_t last_chunked = -1;
  for (size_t s = 0; s < sides.size(); ++s)
    if (sides[s].encoder->chunks(sides[s].inputs.size())) last_chunked = static_cast<int64_t>(s);
  auto arm = [&] {
    if (last && reducer_) reducer_->arm();
  };
  if (last_chunked < 0) arm();
  (loss * scale).backward();
  {
    AutocastScope autocast(c.mixed_precision, model_->device());
    for (size_t s = 0; s < sides.size(); ++s)
      sides[s].encoder->backward_chunks(
          sides[s].inputs, sides[s].emb,
          static_cast<int64_t>(s) == last_chunked ? std::function<void()>(arm) : std::function<void()>());
  }
  return loss.item<double>();
}

void Trainer::check_batch(const StepBatch& batch) const {
  const auto& c = config_;
  const int64_t n = batch.size();
  const int64_t local = c.batch_size / comm_->world_size();
  if (n != local)
    throw InvalidInputError("a step takes batch_size / world_size = " + std::to_string(local) +
                            " examples on each rank, got " + std::to_string(n));
  if (static_cast<int64_t>(batch.example_ids.size()) != n ||
      (!batch.failures.empty() && static_cast<int64_t>(batch.failures.size()) != n))
    throw InvalidInputError("example_ids (and failures) need one entry per example: " + std::to_string(n));
  switch (c.stage) {
    case Stage::kDistill:
      if (!batch.teacher.defined() || batch.teacher.dim() != 2 || batch.teacher.size(0) != n)
        throw InvalidInputError("stage 1 needs teacher embeddings (n, d) for its n = " + std::to_string(n) + " texts");
      break;
    case Stage::kInstruct:
      if (static_cast<int64_t>(batch.positives.size()) != n ||
          static_cast<int64_t>(batch.negatives.size()) != n * batch.negatives_per_query)
        throw InvalidInputError("stage 2 needs one positive per query and negatives_per_query negatives per query");
      break;
    case Stage::kJudge:
      if (batch.candidates_per_query < 1 ||
          static_cast<int64_t>(batch.candidates.size()) != n * batch.candidates_per_query || !batch.scores.defined() ||
          batch.scores.dim() != 2 || batch.scores.size(0) != n || batch.scores.size(1) != batch.candidates_per_query)
        throw InvalidInputError(
            "UniME-V2 needs candidates_per_query candidates per query and scores (n, candidates_per_query)");
      break;
  }
  if (n % c.grad_accumulation != 0)
    throw InvalidInputError("the " + std::to_string(n) + " examples of a step do not split into grad_accumulation = " +
                            std::to_string(c.grad_accumulation) + " micro-batches");
}

StepResult Trainer::step(const StepBatch& batch) {
  at::AutoGradMode grad_mode(true);  // whatever the caller's mode: a step needs gradients
  const auto& c = config_;
  check_batch(batch);
  StepResult result;
  const double loss = accumulate(batch, result);
  std::vector<at::Tensor> params, grads;
  for (auto& [_, p] : trainable_parameters()) {
    params.push_back(p);
    grads.push_back(p.grad());
  }
  if (loss_scale_ != 1.0) {  // fp16: unscale, and skip the update when something overflowed
    bool finite = true;
    for (auto& g : grads) {
      g.div_(loss_scale_);
      finite = finite && at::isfinite(g).all().item<bool>();
    }
    if (!finite) {
      loss_scale_ /= 2;
      good_steps_ = 0;
      optimizer_->zero_grad();
      result.skipped_update = true;
      result.step = step_;
      result.loss = loss;
      return result;
    }
    if (++good_steps_ % 2000 == 0) loss_scale_ *= 2;
  }
  result.grad_norm = clip_grad_norm(params, c.max_grad_norm);
  result.learning_rate = scheduled_lr(c.learning_rate, c.lr_schedule, step_, c.warmup_steps, c.max_steps);
  optimizer_->step(result.learning_rate);
  optimizer_->zero_grad();
  result.step = ++step_;
  result.loss = loss;
  return result;
}

double Trainer::accumulate(const StepBatch& batch, StepResult& result) {
  const auto& c = config_;
  const int64_t micro = batch.size() / c.grad_accumulation;
  double loss_sum = 0;
  // Micro-batch losses are averaged: each backpropagates 1 / grad_accumulation of its gradient.
  const double scale = loss_scale_ / static_cast<double>(c.grad_accumulation);
  for (int64_t m = 0; m < c.grad_accumulation; ++m)
    loss_sum += micro_step(batch, m * micro, (m + 1) * micro, scale, result.skipped, result.examples,
                           m + 1 == c.grad_accumulation);
  // Sum the ranks' gradients (each holds the global loss's gradient through its own examples);
  // parameters without a gradient here (no examples) contribute zeros.
  std::vector<at::Tensor> grads;
  for (auto& [_, p] : trainable_parameters()) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    grads.push_back(p.grad());
  }
  if (reducer_) reducer_->finish();
  return loss_sum / static_cast<double>(c.grad_accumulation);
}

std::vector<std::pair<std::string, at::Tensor>> Trainer::gradients(const StepBatch& batch) {
  at::AutoGradMode grad_mode(true);
  check_batch(batch);
  std::vector<std::pair<std::string, at::Tensor>> out;
  while (true) {
    optimizer_->zero_grad();
    StepResult result;
    accumulate(batch, result);
    out.clear();
    bool finite = true;
    for (auto& [name, p] : trainable_parameters()) {
      out.emplace_back(name, p.grad().clone() / loss_scale_);
      if (loss_scale_ != 1.0) finite = finite && at::isfinite(out.back().second).all().item<bool>();
    }
    optimizer_->zero_grad();
    // fp16: an overflow at this scale is what step() would skip; halve the scale as it would, and
    // recompute, so the caller gets the gradient rather than infinities.
    if (finite || loss_scale_ <= 1.0) break;
    loss_scale_ /= 2;
    good_steps_ = 0;
  }
  return out;
}

std::string Trainer::save_checkpoint(const std::string& root, int64_t keep_last,
                                     const std::map<std::string, std::string>& extra_files) {
  // Rank 0 writes the shared state, every rank its own RNG state, rank 0 the marker last.
  const auto dir = checkpoint_path(root, step_);
  if (comm_->rank() == 0) {
    begin_checkpoint(root, step_);
    if (config_.trainable == "all")
      model::save_tensors((fs::path(dir) / "weights.safetensors").string(), trainable_parameters());
    else
      save_peft_adapter(*model_, config_.lora, dir);
    model::save_tensors((fs::path(dir) / "optimizer.safetensors").string(), optimizer_->state());
    json state{{"step", step_},
               {"epoch", sampler_ ? sampler_->epoch() : 0},
               {"batch_in_epoch", sampler_ ? sampler_->batch_in_epoch() : 0},
               {"num_examples", num_examples_},
               {"loss_scale", loss_scale_},
               {"good_steps", good_steps_},
               {"world_size", comm_->world_size()},
               {"config", config_.to_json()},
               {"extra_files", json::array()}};
    for (const auto& [name, bytes] : extra_files) {
      core::write_file_atomic((fs::path(dir) / name).string(), bytes);
      state["extra_files"].push_back(name);
    }
    core::write_file_atomic((fs::path(dir) / "trainer_state.json").string(), state.dump(2) + "\n");
  }
  comm_->barrier();
  std::vector<std::pair<std::string, at::Tensor>> rng{
      {"cpu", at::globalContext().defaultGenerator(at::kCPU).get_state()}};
  if (model_->device().is_cuda())
    rng.emplace_back("device", at::globalContext().defaultGenerator(model_->device()).get_state());
  model::save_tensors((fs::path(dir) / ("rng-rank" + std::to_string(comm_->rank()) + ".safetensors")).string(), rng);
  comm_->barrier();
  if (comm_->rank() == 0) complete_checkpoint(root, step_, keep_last);
  comm_->barrier();
  return dir;
}

std::map<std::string, std::string> Trainer::load_checkpoint(const std::string& dir) {
  if (!is_complete(dir))
    throw InvalidInputError(dir + " is not a complete checkpoint (no " + kCompleteMarker + " marker)");
  const auto state_path = (fs::path(dir) / "trainer_state.json").string();
  const auto state = core::read_json_file(state_path);
  // The run must compute the same thing: compare everything that changes the maths or the data order.
  const auto theirs = resume_identity(TrainerConfig::from_json(state.at("config")));
  const auto ours = resume_identity(config_);
  std::vector<std::string> differ;
  for (const auto& [key, value] : ours.items())
    if (!theirs.contains(key) || theirs[key] != value)
      differ.push_back(key + " = " + (theirs.contains(key) ? theirs[key].dump() : "<absent>") + " there, " +
                       value.dump() + " here");
  if (!differ.empty())
    throw InvalidInputError(dir + " was written by a run with another config: " + core::join(differ, "; "));
  const auto their_examples = state.at("num_examples").get<int64_t>();
  if (sampler_ && their_examples != num_examples_)
    throw InvalidInputError(dir + " was written for " + std::to_string(their_examples) + " examples; this data has " +
                            std::to_string(num_examples_));
  // Trained weights (adapters under PEFT's names, or every weight by module path), optimiser, RNG, position.
  const bool all = config_.trainable == "all";
  const auto weights = (fs::path(dir) / (all ? "weights.safetensors" : "adapter_model.safetensors")).string();
  auto saved = model::load_tensors(weights);
  {
    at::NoGradGuard no_grad;
    for (auto& [path, p] : trainable_parameters()) {
      const auto key = all ? path : kPeftPrefix + model_->backbone().weight_map().to_hf(path).value_or(path);
      auto it = saved.find(key);
      if (it == saved.end()) throw MissingKeyError(weights + " has no '" + key + "'");
      p.copy_(it->second);
    }
  }
  auto opt = model::load_tensors((fs::path(dir) / "optimizer.safetensors").string());
  optimizer_->load_state(opt, state.at("step").get<int64_t>());
  step_ = state.at("step").get<int64_t>();
  // This rank's RNG state; a run resumed on another number of ranks (as many as the global batch
  // divides into) starts a fresh stream per rank instead, seeded from the run's seed, rank and step.
  const auto rng_path = fs::path(dir) / ("rng-rank" + std::to_string(comm_->rank()) + ".safetensors");
  if (state.at("world_size").get<int64_t>() == comm_->world_size() && fs::exists(rng_path)) {
    auto rng = model::load_tensors(rng_path.string());
    at::Generator cpu = at::globalContext().defaultGenerator(at::kCPU);
    cpu.set_state(rng.at("cpu"));
    if (model_->device().is_cuda() && rng.count("device")) {
      at::Generator g = at::globalContext().defaultGenerator(model_->device());
      g.set_state(rng.at("device"));
    }
  } else {
    at::manual_seed(config_.seed + static_cast<uint64_t>(comm_->rank()) + 1000003ULL * static_cast<uint64_t>(step_));
  }
  loss_scale_ = state.value("loss_scale", 1.0);
  good_steps_ = state.value("good_steps", int64_t{0});
  if (sampler_) sampler_->set_position(state.at("epoch").get<int64_t>(), state.at("batch_in_epoch").get<int64_t>());
  std::map<std::string, std::string> extra;
  for (const auto& name : state.value("extra_files", json::array()))
    extra[name.get<std::string>()] = read_file((fs::path(dir) / name.get<std::string>()).string());
  return extra;
}

void Trainer::save_adapter(const std::string& dir) {
  if (config_.trainable == "all")
    throw InvalidInputError(
        "this run trains every weight (trainable = 'all'): there are no adapters; save_merged "
        "writes the trained model");
  if (comm_->rank() == 0) save_peft_adapter(*model_, config_.lora, dir);
  comm_->barrier();
}

void Trainer::save_merged(const std::string& base_dir, const std::string& out_dir) {
  if (comm_->rank() == 0) save_merged_checkpoint(*model_, base_dir, out_dir, config_.trainable == "all");
  comm_->barrier();
}

}  // namespace unime::train
