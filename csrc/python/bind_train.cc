// unime._C.Trainer (csrc/train) for Python's unime.Trainer, and the PEFT / merged-checkpoint formats.
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "model/embedding_model.h"
#include "python/bindings.h"
#include "python/convert.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/peft_format.h"
#include "train/trainer.h"

namespace unime::python {

namespace {

using train::Trainer;

// A side of a step from a dict {"texts", "images", "instructions", "prompts"} of parallel lists.
std::vector<model::EncodeInput> side_inputs(const py::dict& sides, const char* name, std::vector<py::object>& keep) {
  if (!sides.contains(name)) return {};
  py::dict side = sides[name];
  py::list none_list;
  const size_t n = py::len(side["texts"]);
  for (size_t i = 0; i < n; ++i) none_list.append(py::none());
  auto get = [&](const char* key) -> py::sequence {
    if (side.contains(key)) return py::sequence(side[key]);
    return py::sequence(none_list);
  };
  py::object prompts = side.contains("prompts") ? py::object(side["prompts"]) : py::object(py::none());
  return to_inputs(side["texts"], get("images"), get("instructions"), keep, prompts);
}

train::StepBatch step_batch(std::vector<std::string> example_ids, const py::dict& sides,
                            const std::optional<at::Tensor>& teacher, const std::optional<at::Tensor>& scores,
                            int64_t negatives_per_query, int64_t candidates_per_query,
                            std::vector<std::string> failures, std::vector<py::object>& keep) {
  train::StepBatch b;
  b.example_ids = std::move(example_ids);
  b.failures = std::move(failures);
  b.texts = side_inputs(sides, "texts", keep);
  b.queries = side_inputs(sides, "queries", keep);
  b.positives = side_inputs(sides, "positives", keep);
  b.negatives = side_inputs(sides, "negatives", keep);
  b.candidates = side_inputs(sides, "candidates", keep);
  b.negatives_per_query = negatives_per_query;
  b.candidates_per_query = candidates_per_query;
  if (teacher) b.teacher = *teacher;
  if (scores) b.scores = *scores;
  return b;
}

// A Trainer method taking a step's examples from Python (the step batch is built with the GIL, the
// method runs without it).
template <typename Fn>
auto with_step_batch(Fn fn) {
  return [fn](Trainer& t, std::vector<std::string> example_ids, const py::dict& sides,
              std::optional<at::Tensor> teacher, std::optional<at::Tensor> scores, int64_t negatives_per_query,
              int64_t candidates_per_query, std::vector<std::string> failures) {
    std::vector<py::object> keep;
    auto b = step_batch(std::move(example_ids), sides, teacher, scores, negatives_per_query, candidates_per_query,
                        std::move(failures), keep);
    py::gil_scoped_release release;
    return fn(t, b);
  };
}

#define UNIME_STEP_ARGS                                                                                              \
  py::arg("example_ids"), py::arg("sides"), py::arg("teacher") = py::none(), py::arg("scores") = py::none(),         \
                                            py::arg("negatives_per_query") = 0, py::arg("candidates_per_query") = 0, \
                                            py::arg("failures") = std::vector<std::string> {}

}  // namespace

void bind_train(py::module_& m) {
  using train::StepResult;
  py::class_<StepResult>(m, "StepResult")
      .def_readonly("step", &StepResult::step)
      .def_readonly("loss", &StepResult::loss)
      .def_readonly("learning_rate", &StepResult::learning_rate)
      .def_readonly("grad_norm", &StepResult::grad_norm)
      .def_readonly("examples", &StepResult::examples)
      .def_readonly("skipped_update", &StepResult::skipped_update)
      .def_property_readonly("skipped", [](const StepResult& r) {
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& s : r.skipped) out.emplace_back(s.example_id, s.reason);
        return out;
      });

  py::class_<Trainer, std::shared_ptr<Trainer>>(m, "Trainer")
      .def(py::init([](std::shared_ptr<model::EmbeddingModel> model, const std::string& config_json,
                       const py::object& group, const py::object& monitor, double timeout_seconds) {
             train::TrainerConfig config;
             try {
               config = train::TrainerConfig::from_json(nlohmann::json::parse(config_json));
             } catch (const nlohmann::json::exception& e) {
               throw InvalidInputError(std::string("trainer config is not valid JSON: ") + e.what());
             }
             std::shared_ptr<train::Communicator> comm = std::make_shared<train::LocalCommunicator>();
             if (!group.is_none()) {
               // torch.distributed's ProcessGroup objects are c10d::ProcessGroup underneath.
               auto pg = py::cast<c10::intrusive_ptr<c10d::ProcessGroup>>(group);
               c10::intrusive_ptr<c10d::ProcessGroup> mon;
               if (!monitor.is_none()) mon = py::cast<c10::intrusive_ptr<c10d::ProcessGroup>>(monitor);
               comm = std::make_shared<train::ProcessGroupCommunicator>(
                   pg, std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)), mon);
             }
             py::gil_scoped_release release;
             return std::make_shared<Trainer>(std::move(model), std::move(config), comm);
           }),
           py::arg("model"), py::arg("config_json"), py::arg("process_group") = py::none(),
           py::arg("monitor_group") = py::none(), py::arg("timeout") = 1800.0)
      .def_property_readonly("rank", [](Trainer& t) { return t.communicator().rank(); })
      .def_property_readonly("world_size", [](Trainer& t) { return t.communicator().world_size(); })
      .def("step", with_step_batch([](Trainer& t, const train::StepBatch& b) { return t.step(b); }), UNIME_STEP_ARGS)
      .def("gradients", with_step_batch([](Trainer& t, const train::StepBatch& b) { return t.gradients(b); }),
           UNIME_STEP_ARGS)
      .def("set_num_examples", &Trainer::set_num_examples)
      .def("next_indices", &Trainer::next_indices)
      .def("peek_indices", &Trainer::peek_indices)
      .def(
          "save_checkpoint",
          [](Trainer& t, const std::string& root, int64_t keep_last, const std::map<std::string, py::bytes>& extra) {
            std::map<std::string, std::string> files;
            for (const auto& [k, v] : extra) files[k] = std::string(v);
            py::gil_scoped_release release;
            return t.save_checkpoint(root, keep_last, files);
          },
          py::arg("root"), py::arg("keep_last") = 0, py::arg("extra_files") = std::map<std::string, py::bytes>{})
      .def("load_checkpoint",
           [](Trainer& t, const std::string& dir) {
             std::map<std::string, std::string> extra;
             {
               py::gil_scoped_release release;
               extra = t.load_checkpoint(dir);
             }
             py::dict out;
             for (const auto& [k, v] : extra) out[py::str(k)] = py::bytes(v);
             return out;
           })
      .def("save_adapter", &Trainer::save_adapter, py::call_guard<py::gil_scoped_release>())
      .def("save_merged", &Trainer::save_merged, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("global_step", &Trainer::global_step)
      .def_property_readonly("loss_scale", &Trainer::loss_scale)
      .def_property_readonly("adapted_modules", &Trainer::adapted_modules)
      .def_property_readonly("config_json", [](const Trainer& t) { return t.config().to_json().dump(); })
      .def("trainable_parameters", &Trainer::trainable_parameters);

  m.def("latest_checkpoint", &train::latest_checkpoint, py::arg("root"),
        "The newest complete checkpoint directory under root (None when there is none).");
  m.def("complete_checkpoints", &train::complete_checkpoints, py::arg("root"));
  m.def(
      "load_peft_adapter",
      [](model::EmbeddingModel& model, const std::string& dir) { return train::load_peft_adapter(model, dir); },
      py::arg("model"), py::arg("dir"), py::call_guard<py::gil_scoped_release>());
  m.def(
      "save_peft_adapter",
      [](model::EmbeddingModel& model, const std::string& dir, int64_t r, double alpha, double dropout, bool rslora) {
        train::save_peft_adapter(model, {r, alpha, dropout, rslora, "kaiming"}, dir);
      },
      py::arg("model"), py::arg("dir"), py::arg("r"), py::arg("alpha"), py::arg("dropout") = 0.0,
      py::arg("use_rslora") = false, py::call_guard<py::gil_scoped_release>());
  m.def(
      "save_merged_checkpoint",
      [](model::EmbeddingModel& model, const std::string& base_dir, const std::string& out_dir) {
        train::save_merged_checkpoint(model, base_dir, out_dir);
      },
      py::arg("model"), py::arg("base_dir"), py::arg("out_dir"), py::call_guard<py::gil_scoped_release>());
}

}  // namespace unime::python
