// PYBIND11_MODULE(_C): the extension module. Importing it also registers torch.ops.unime.*.
#include <ATen/Parallel.h>

#include <atomic>

#include "model/packed_attention.h"
#include "ops/cpu/attention_cpu.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/rotary_cpu.h"
#include "python/bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "unime C++ core (LibTorch)";
  m.attr("__torch_version__") = UNIME_TORCH_VERSION;
  m.attr("__version__") = UNIME_VERSION;
#ifdef UNIME_WITH_CUDA
  m.attr("__with_cuda__") = true;
#else
  m.attr("__with_cuda__") = false;
#endif
  // How many threads an at::parallel_for of the C++ core runs on: 1 in a build without OpenMP, where
  // torch's inline `#pragma omp parallel` compiles to nothing (a regression the tests catch).
  m.def("_parallel_for_threads", [] {
    std::atomic<int> threads{1};
    at::parallel_for(0, 1 << 12, 1, [&](int64_t, int64_t) {
      const int mine = at::get_thread_num() + 1;
      int seen = threads.load();
      while (mine > seen && !threads.compare_exchange_weak(seen, mine)) {
      }
    });
    return threads.load();
  });
  // Process-wide switches, returning the previous setting, so tests and benchmarks can compare: the
  // CPU bf16 attention kernel (csrc/ops/cpu/attention_cpu.h) with torch's kernel, and the CUDA varlen
  // attention calls (csrc/model/packed_attention.h) with the per-sequence loop, the fused CPU rotary
  // (csrc/ops/cpu/rotary_cpu.h) with the unfused expression, and the AVX-512F paths of the CPU
  // kernels (csrc/ops/cpu/isa.h) with the AVX2 and scalar ones.
  m.def("_use_cpu_bf16_attention", &unime::ops::set_cpu_bf16_attention_enabled, pybind11::arg("enabled"));
  m.def("_use_cuda_varlen_attention", &unime::model::set_cuda_varlen_attention_enabled, pybind11::arg("enabled"));
  m.def("_use_cpu_rotary_kernel", &unime::ops::set_cpu_rotary_enabled, pybind11::arg("enabled"));
  m.def("_use_avx512_kernels", &unime::ops::set_avx512_kernels_enabled, pybind11::arg("enabled"));
  unime::python::register_error_translators(m);
  unime::python::bind_model(m);
  unime::python::bind_checkpoint(m);
  unime::python::bind_tokenizer(m);
  unime::python::bind_image(m);
  unime::python::bind_prompt(m);
  unime::python::bind_layers(m);
  unime::python::bind_train(m);
}
