// bitnet_backend._engine.testing: run one ISA's kernels on given data, for tests and
// benchmarks. Not part of the product API.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../engine/model.h"
#include "bindings.h"

namespace bitnet::bindings {

namespace {

template <class T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

const KernelTable& table_for(const std::string& isa) { return select_kernels(isa.c_str()); }

// Mean seconds per call of `run` over `iters` calls, after one untimed warm-up call.
template <class Run>
double seconds_per_call(Run&& run, int iters) {
    run();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) run();
    const auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double>(t1 - t0).count() / iters;
}

// A borrowed [rows, cols] float32 view, as the head builder takes its table.
TensorView float_table(const float* data, int rows, int cols) {
    TensorView view;
    view.data = data;
    view.dtype = DType::F32;
    view.shape = {rows, cols};
    return view;
}

py::array_t<int32_t> kernel_gemm(const std::string& isa, const Array<int8_t>& weights,
                                 const Array<int8_t>& acts, int n_threads, bool base3) {
    if (weights.ndim() != 2 || acts.ndim() != 2 || acts.shape(1) != weights.shape(1)) {
        throw std::invalid_argument("weights [rows, cols] and acts [n, cols] expected");
    }
    const int rows = static_cast<int>(weights.shape(0)), cols = static_cast<int>(weights.shape(1));
    const int n = static_cast<int>(acts.shape(0));
    const KernelTable& k = table_for(isa);
    ThreadPool pool(n_threads);
    const TernaryMatrix mat = TernaryMatrix::from_ternary(weights.data(), rows, cols, pool, base3);
    const size_t stride = static_cast<size_t>(mat.padded_cols());
    std::vector<int8_t> x(static_cast<size_t>(n) * stride, 0);
    std::vector<int32_t> sums(n, 0);
    for (int t = 0; t < n; ++t) {
        for (int c = 0; c < cols; ++c) {
            x[t * stride + c] = acts.data()[static_cast<size_t>(t) * cols + c];
            sums[t] += x[t * stride + c];
        }
    }
    std::vector<int32_t> out(static_cast<size_t>(n) * mat.padded_rows());
    const QuantizedActs qa{x.data(), sums.data(), stride, n};
    const PackedTernary packed = mat.packed();
    without_gil([&] {
        pool.parallel_for(mat.n_row_blocks(), [&](int b0, int b1) {
            (base3 ? k.ternary5_gemm : k.ternary_gemm)(packed, b0, b1, qa, out.data(),
                                                       mat.padded_rows());
        });
    });
    py::array_t<int32_t> result({n, rows});
    for (int t = 0; t < n; ++t) {
        std::copy(out.begin() + static_cast<size_t>(t) * mat.padded_rows(),
                  out.begin() + static_cast<size_t>(t) * mat.padded_rows() + rows,
                  result.mutable_data() + static_cast<size_t>(t) * rows);
    }
    return result;
}

// Seconds per ternary GEMM call on random weights (layout built once, not timed).
double kernel_bench(const std::string& isa, int rows, int cols, int n_tokens, int iters,
                    int n_threads, bool base3) {
    const KernelTable& k = table_for(isa);
    ThreadPool pool(n_threads);
    std::vector<int8_t> w(static_cast<size_t>(rows) * cols);
    uint32_t state = 12345;
    for (auto& v : w) {
        state = state * 1664525u + 1013904223u;
        v = static_cast<int8_t>(static_cast<int>((state >> 24) % 3) - 1);
    }
    const TernaryMatrix mat = TernaryMatrix::from_ternary(w.data(), rows, cols, pool, base3);
    const size_t stride = static_cast<size_t>(mat.padded_cols());
    std::vector<int8_t> x(stride * n_tokens, 3);
    std::vector<int32_t> sums(n_tokens, 0), out(static_cast<size_t>(n_tokens) * mat.padded_rows());
    const QuantizedActs qa{x.data(), sums.data(), stride, n_tokens};
    const PackedTernary packed = mat.packed();
    auto run = [&] {
        pool.parallel_for(mat.n_row_blocks(), [&](int b0, int b1) {
            (base3 ? k.ternary5_gemm : k.ternary_gemm)(packed, b0, b1, qa, out.data(),
                                                       mat.padded_rows());
        });
    };
    return without_gil([&] { return seconds_per_call(run, iters); });
}

// Seconds per output-head call for `n_tokens` rows (one pass over the head, as a batched step
// makes it) on a random Gaussian table; the head is built once, not timed.
double kernel_head_bench(const std::string& isa, HeadKind kind, int vocab, int hidden, int iters,
                         int n_threads, int n_tokens) {
    if (n_tokens < 1 || n_tokens > OutputHead::kHeadBatch) {
        throw std::invalid_argument("n_tokens must be in [1, " +
                                    std::to_string(OutputHead::kHeadBatch) + "]");
    }
    const KernelTable& k = table_for(isa);
    ThreadPool pool(n_threads);
    std::vector<float> table(static_cast<size_t>(vocab) * hidden);
    std::mt19937 rng(7);
    std::normal_distribution<float> gauss;
    for (auto& v : table) v = gauss(rng);
    const TensorView view = float_table(table.data(), vocab, hidden);
    const OutputHead head(view, vocab, hidden, kind, pool);
    std::vector<float>().swap(table);
    std::vector<float> h(static_cast<size_t>(n_tokens) * hidden);
    std::vector<float> out(static_cast<size_t>(n_tokens) * vocab);
    std::vector<float*> rows(n_tokens);
    for (int t = 0; t < n_tokens; ++t) rows[t] = out.data() + static_cast<size_t>(t) * vocab;
    for (auto& v : h) v = gauss(rng);
    std::vector<int8_t> xq(static_cast<size_t>(n_tokens) * 2 * head.padded_cols() + 64);
    std::vector<int32_t> acc(2 * head.padded_rows());
    auto run = [&] {
        head.logits_batch(h.data(), n_tokens, rows.data(), k, pool, xq.data(), acc.data());
    };
    return without_gil([&] { return seconds_per_call(run, iters); });
}

py::array_t<float> kernel_head_logits(const std::string& isa, HeadKind kind,
                                      const Array<float>& table, const Array<float>& h,
                                      int n_threads) {
    if (table.ndim() != 2 || h.ndim() != 1 || h.shape(0) != table.shape(1)) {
        throw std::invalid_argument("table [vocab, hidden] and h [hidden] expected");
    }
    const int vocab = static_cast<int>(table.shape(0)), hidden = static_cast<int>(table.shape(1));
    const KernelTable& k = table_for(isa);
    ThreadPool pool(n_threads);
    const TensorView view = float_table(table.data(), vocab, hidden);
    const OutputHead head(view, vocab, hidden, kind, pool);
    std::vector<int8_t> xq(2 * head.padded_cols() + 64);
    std::vector<int32_t> acc(2 * head.padded_rows());
    py::array_t<float> out(vocab);
    float* out_ptr = out.mutable_data();
    const float* h_ptr = h.data();
    without_gil([&] { head.logits(h_ptr, out_ptr, k, pool, xq.data(), acc.data()); });
    return out;
}

py::tuple kernel_quantize(const std::string& isa, const Array<float>& x) {
    const KernelTable& k = table_for(isa);
    const int n = static_cast<int>(x.size());
    py::array_t<int8_t> q(n);
    int32_t sum = 0;
    const float s = k.quantize_row(x.data(), n, q.mutable_data(), &sum);
    return py::make_tuple(q, s, sum);
}

}  // namespace

void bind_test_hooks(py::module_& m) {
    m.def("kernel_gemm", &kernel_gemm, py::arg("isa"), py::arg("weights"), py::arg("acts"),
          py::arg("n_threads") = 1, py::arg("base3") = false);
    m.def("kernel_bench", &kernel_bench, py::arg("isa"), py::arg("rows"), py::arg("cols"),
          py::arg("n_tokens"), py::arg("iters"), py::arg("n_threads") = 1,
          py::arg("base3") = false);
    m.def("kernel_head_bench", &kernel_head_bench, py::arg("isa"), py::arg("kind"),
          py::arg("vocab"), py::arg("hidden"), py::arg("iters"), py::arg("n_threads") = 1,
          py::arg("n_tokens") = 1);
    m.def("kernel_head_logits", &kernel_head_logits, py::arg("isa"), py::arg("kind"),
          py::arg("table"), py::arg("h"), py::arg("n_threads") = 1);
    m.def("kernel_quantize", &kernel_quantize, py::arg("isa"), py::arg("x"));
}

}  // namespace bitnet::bindings
