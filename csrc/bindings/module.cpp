// pybind11 module bitnet_backend._engine: the only file that sees Python. Every call that
// runs the network releases the GIL, so several Python threads can drive separate sessions.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../engine/model.h"

namespace py = pybind11;
using namespace bitnet;

namespace {

using IdArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

ModelConfig config_from_dict(const py::dict& d) {
    ModelConfig c;
    c.hidden_size = d["hidden_size"].cast<int>();
    c.intermediate_size = d["intermediate_size"].cast<int>();
    c.num_layers = d["num_hidden_layers"].cast<int>();
    c.num_heads = d["num_attention_heads"].cast<int>();
    c.num_kv_heads = d["num_key_value_heads"].cast<int>();
    c.head_dim = d["head_dim"].cast<int>();
    c.vocab_size = d["vocab_size"].cast<int>();
    c.rms_norm_eps = d["rms_norm_eps"].cast<float>();
    c.rope_theta = d["rope_theta"].cast<float>();
    c.max_position_embeddings = d["max_position_embeddings"].cast<int>();
    c.tie_word_embeddings = d["tie_word_embeddings"].cast<bool>();
    c.scale_divides = d["scale_divides"].cast<bool>();
    if (d.contains("activation")) {
        const auto act = d["activation"].cast<std::string>();
        if (act != "relu2" && act != "silu") {
            throw std::invalid_argument("activation must be 'relu2' or 'silu'");
        }
        c.activation = act == "silu" ? FfnActivation::Silu : FfnActivation::Relu2;
    }
    if (d.contains("attn_sub_norm")) c.attn_sub_norm = d["attn_sub_norm"].cast<std::string>();
    if (d.contains("ffn_sub_norm")) c.ffn_sub_norm = d["ffn_sub_norm"].cast<std::string>();
    if (d.contains("release_source_pages")) {
        c.release_source_pages = d["release_source_pages"].cast<bool>();
    }
    if (d.contains("prepacked_head")) c.prepacked_head = d["prepacked_head"].cast<std::string>();
    if (d.contains("weight_layout")) {
        const auto layout = d["weight_layout"].cast<std::string>();
        if (layout != "i2_r16" && layout != "i1_r16") {
            throw std::invalid_argument("weight_layout must be 'i2_r16' or 'i1_r16'");
        }
        c.base3_layout = layout == "i1_r16";
    }
    return c;
}

// tensors: {name: (dtype string, shape tuple, array)}; arrays stay owned by Python.
std::map<std::string, TensorView> views_from_dict(const py::dict& tensors) {
    std::map<std::string, TensorView> views;
    for (auto item : tensors) {
        const auto name = item.first.cast<std::string>();
        const auto entry = item.second.cast<py::tuple>();
        TensorView v;
        v.dtype = parse_dtype(entry[0].cast<std::string>());
        v.shape = entry[1].cast<std::vector<int64_t>>();
        const py::buffer_info info = entry[2].cast<py::buffer>().request();
        if (static_cast<size_t>(info.size) * info.itemsize != v.numel() * dtype_size(v.dtype)) {
            throw CheckpointContentError(name + ": buffer size does not match dtype and shape");
        }
        v.data = info.ptr;
        views.emplace(name, std::move(v));
    }
    return views;
}

const char* output_name_error = "output must be 'none', 'last', 'all' or 'hidden'";

Output parse_output(const std::string& s) {
    if (s == "none") return Output::None;
    if (s == "last") return Output::LastLogits;
    if (s == "all") return Output::AllLogits;
    if (s == "hidden") return Output::Hidden;
    throw std::invalid_argument(output_name_error);
}

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

}  // namespace

PYBIND11_MODULE(_engine, m) {
    m.doc() = "BitNet b1.58 CPU engine (C++).";
    py::register_exception<CheckpointContentError>(m, "CheckpointContentError", PyExc_ValueError);
    py::register_exception<NonFiniteLogitsError>(m, "NonFiniteLogitsError", PyExc_RuntimeError);

    py::class_<Model, std::shared_ptr<Model>>(m, "Model")
        .def(py::init([](const py::dict& config, const py::dict& tensors, int n_threads,
                         const std::string& isa, const std::string& lm_head,
                         const py::object& progress, const std::string& kv_cache, int exact_logits,
                         const std::string& exact_logits_file, int64_t exact_logits_offset) {
                 const ModelConfig c = config_from_dict(config);
                 const auto views = views_from_dict(tensors);
                 const HeadKind head = parse_head_kind(lm_head);
                 const KVType kv = parse_kv_type(kv_cache);
                 if (exact_logits < 0) {
                     throw std::invalid_argument("exact_logits must be >= 0, got " +
                                                 std::to_string(exact_logits));
                 }
                 std::function<void(int, int)> report;
                 if (!progress.is_none()) {
                     report = [&progress](int done, int total) {
                         py::gil_scoped_acquire gil;
                         progress(done, total);
                     };
                 }
                 py::gil_scoped_release release;
                 const ExactLogitsOptions exact{exact_logits, exact_logits_file,
                                                exact_logits_offset};
                 return std::make_shared<Model>(c, views, n_threads, isa, head, report, kv, exact);
             }),
             py::arg("config"), py::arg("tensors"), py::arg("n_threads"), py::arg("isa") = "",
             py::arg("lm_head") = "int8", py::arg("progress") = py::none(),
             py::arg("kv_cache") = "f32", py::arg("exact_logits") = 0,
             py::arg("exact_logits_file") = "", py::arg("exact_logits_offset") = 0)
        .def_property_readonly(
            "kv_cache", [](const Model& mdl) { return std::string(kv_type_name(mdl.kv_type())); })
        .def_property_readonly(
            "lm_head",
            [](const Model& mdl) { return std::string(head_kind_name(mdl.head().kind())); })
        .def_property_readonly("exact_logits",
                               [](const Model& mdl) { return mdl.exact_logits().top(); })
        .def_property_readonly("isa",
                               [](const Model& mdl) { return std::string(mdl.kernels().isa); })
        .def_property_readonly("n_threads", &Model::n_threads)
        .def_property_readonly(
            "weight_layout",
            [](const Model& mdl) {
                return std::string(mdl.config().base3_layout ? "i1_r16" : "i2_r16");
            })
        .def("export_layout",
             [](py::object self) {
                 // Views of the engine's own memory, each keeping the engine alive: `bitnet
                 // convert` writes them out without a second copy of the weights in memory.
                 const Model& mdl = self.cast<const Model&>();
                 py::dict out;
                 for (const auto& item : mdl.export_layout()) {
                     const TensorView& v = item.second;
                     if (v.dtype == DType::F32) {
                         out[py::str(item.first)] = py::array_t<float>(
                             {v.numel()}, {static_cast<py::ssize_t>(sizeof(float))},
                             static_cast<const float*>(v.data), self);
                     } else {
                         out[py::str(item.first)] =
                             py::array_t<uint8_t>({v.numel()}, {static_cast<py::ssize_t>(1)},
                                                  static_cast<const uint8_t*>(v.data), self);
                     }
                 }
                 return out;
             })
        .def_property_readonly("weight_bytes", &Model::weight_bytes)
        .def(
            "eval_batch",
            [](Model& mdl, const std::vector<std::pair<Session*, IdArray>>& batch) {
                // One step for every (session, ids): only the last logits of each are kept.
                std::vector<BatchItem> items;
                for (const auto& entry : batch) {
                    items.push_back({entry.first, entry.second.data(),
                                     static_cast<int>(entry.second.size()), Output::LastLogits,
                                     nullptr});
                }
                py::gil_scoped_release release;
                mdl.eval_batch(items.data(), static_cast<int>(items.size()));
            },
            py::arg("items"))
        .def(
            "hidden_states_batch",
            [](const std::shared_ptr<Model>& mdl, const std::vector<IdArray>& batch) {
                // Fresh forwards of several texts in shared steps: [len, hidden] each.
                std::vector<std::unique_ptr<Session>> sessions;
                std::vector<py::array_t<float>> outs;
                std::vector<BatchItem> items;
                for (const auto& ids : batch) {
                    const int n = static_cast<int>(ids.size());
                    sessions.push_back(std::make_unique<Session>(mdl, std::max(n, 1)));
                    outs.emplace_back(std::vector<py::ssize_t>{n, mdl->config().hidden_size});
                    items.push_back({sessions.back().get(), ids.data(), n, Output::Hidden,
                                     outs.back().mutable_data()});
                }
                {
                    py::gil_scoped_release release;
                    mdl->eval_batch(items.data(), static_cast<int>(items.size()));
                }
                return outs;
            },
            py::arg("batch"));

    py::class_<Session>(m, "Session")
        .def(py::init([](std::shared_ptr<Model> model, int n_ctx) {
                 return std::make_unique<Session>(std::move(model), n_ctx);
             }),
             py::arg("model"), py::arg("n_ctx"))
        .def_property_readonly("n_past", &Session::n_past)
        .def_property_readonly("n_ctx", &Session::n_ctx)
        .def_property_readonly("tokens", [](const Session& s) { return s.tokens(); })
        .def(
            "eval",
            [](Session& s, py::array_t<int32_t, py::array::c_style | py::array::forcecast> ids,
               const std::string& output, int width) -> py::object {
                const Output out_kind = parse_output(output);
                const int n = static_cast<int>(ids.size());
                py::array_t<float> result;
                float* out = nullptr;
                if (out_kind == Output::AllLogits || out_kind == Output::Hidden) {
                    result = py::array_t<float>({n, width});
                    out = result.mutable_data();
                }
                const int32_t* ptr = ids.data();
                {
                    py::gil_scoped_release release;
                    s.eval(ptr, n, out_kind, out);
                }
                if (out == nullptr) return py::none();
                return std::move(result);
            },
            py::arg("ids"), py::arg("output") = "last", py::arg("width") = 0)
        .def("last_logits",
             [](const Session& s, int vocab) {
                 if (!s.has_logits()) throw std::logic_error("no logits yet: eval() first");
                 py::array_t<float> out(vocab);
                 std::copy(s.last_logits(), s.last_logits() + vocab, out.mutable_data());
                 return out;
             })
        .def(
            "sample",
            [](Session& s, double temperature, int top_k, double top_p, double min_p,
               float repeat_penalty, int repeat_last_n, py::object mask) {
                SamplerParams p;
                p.temperature = temperature;
                p.top_k = top_k;
                p.top_p = top_p;
                p.min_p = min_p;
                p.repeat_penalty = repeat_penalty;
                p.repeat_last_n = repeat_last_n;
                if (mask.is_none()) {
                    py::gil_scoped_release release;
                    return s.sample(p, nullptr, 0);
                }
                auto words =
                    mask.cast<py::array_t<uint32_t, py::array::c_style | py::array::forcecast>>();
                const uint32_t* ptr = words.data();
                const size_t n = static_cast<size_t>(words.size());
                py::gil_scoped_release release;
                return s.sample(p, ptr, n);
            },
            py::arg("temperature"), py::arg("top_k"), py::arg("top_p"), py::arg("min_p"),
            py::arg("repeat_penalty"), py::arg("repeat_last_n"), py::arg("mask") = py::none())
        .def("set_seed", &Session::set_seed)
        .def("truncate", &Session::truncate)
        .def("copy_prefix", &Session::copy_prefix, py::arg("src"), py::arg("n"),
             py::call_guard<py::gil_scoped_release>());

    // Kernel entry points for tests and benchmarks: run one ISA's kernels on given data.
    m.def("available_isas", []() {
        std::vector<std::string> out;
        for (const char* isa : {"ref", "avx2", "avx512", "neon"}) {
            try {
                select_kernels(isa);
                out.emplace_back(isa);
            } catch (const std::exception&) {
            }
        }
        return out;
    });
    m.def("default_isa", []() {
        const char* forced = std::getenv("BITNET_ISA");
        return std::string(select_kernels(forced).isa);
    });
    m.def("base3_uses_vbmi", []() {
        // Whether the avx512 kernels decode the base-3 layout with VBMI byte permutes here.
        return cpu_has_avx512_vbmi() && ternary5_gemm_avx512_vbmi() != nullptr;
    });
    m.def(
        "kernel_gemm",
        [](const std::string& isa,
           py::array_t<int8_t, py::array::c_style | py::array::forcecast> weights,
           py::array_t<int8_t, py::array::c_style | py::array::forcecast> acts, int n_threads,
           bool base3) {
            if (weights.ndim() != 2 || acts.ndim() != 2 || acts.shape(1) != weights.shape(1)) {
                throw std::invalid_argument("weights [rows, cols] and acts [n, cols] expected");
            }
            const int rows = static_cast<int>(weights.shape(0)),
                      cols = static_cast<int>(weights.shape(1));
            const int n = static_cast<int>(acts.shape(0));
            const KernelTable& k = table_for(isa);
            ThreadPool pool(n_threads);
            const TernaryMatrix mat =
                TernaryMatrix::from_ternary(weights.data(), rows, cols, pool, base3);
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
            {
                py::gil_scoped_release release;
                pool.parallel_for(mat.n_row_blocks(), [&](int b0, int b1) {
                    (base3 ? k.ternary5_gemm : k.ternary_gemm)(packed, b0, b1, qa, out.data(),
                                                               mat.padded_rows());
                });
            }
            py::array_t<int32_t> result({n, rows});
            for (int t = 0; t < n; ++t) {
                std::copy(out.begin() + static_cast<size_t>(t) * mat.padded_rows(),
                          out.begin() + static_cast<size_t>(t) * mat.padded_rows() + rows,
                          result.mutable_data() + static_cast<size_t>(t) * rows);
            }
            return result;
        },
        py::arg("isa"), py::arg("weights"), py::arg("acts"), py::arg("n_threads") = 1,
        py::arg("base3") = false);
    m.def(
        "kernel_bench",
        [](const std::string& isa, int rows, int cols, int n_tokens, int iters, int n_threads,
           bool base3) {
            // Seconds per ternary GEMM call on random weights (layout built once, not timed).
            const KernelTable& k = table_for(isa);
            ThreadPool pool(n_threads);
            std::vector<int8_t> w(static_cast<size_t>(rows) * cols);
            uint32_t state = 12345;
            for (auto& v : w) {
                state = state * 1664525u + 1013904223u;
                v = static_cast<int8_t>(static_cast<int>((state >> 24) % 3) - 1);
            }
            const TernaryMatrix mat =
                TernaryMatrix::from_ternary(w.data(), rows, cols, pool, base3);
            const size_t stride = static_cast<size_t>(mat.padded_cols());
            std::vector<int8_t> x(stride * n_tokens, 3);
            std::vector<int32_t> sums(n_tokens, 0),
                out(static_cast<size_t>(n_tokens) * mat.padded_rows());
            const QuantizedActs qa{x.data(), sums.data(), stride, n_tokens};
            const PackedTernary packed = mat.packed();
            py::gil_scoped_release release;
            auto run = [&] {
                pool.parallel_for(mat.n_row_blocks(), [&](int b0, int b1) {
                    (base3 ? k.ternary5_gemm : k.ternary_gemm)(packed, b0, b1, qa, out.data(),
                                                               mat.padded_rows());
                });
            };
            return seconds_per_call(run, iters);
        },
        py::arg("isa"), py::arg("rows"), py::arg("cols"), py::arg("n_tokens"), py::arg("iters"),
        py::arg("n_threads") = 1, py::arg("base3") = false);
    m.def(
        "kernel_head_bench",
        [](const std::string& isa, const std::string& kind, int vocab, int hidden, int iters,
           int n_threads) {
            // Seconds per output-head call (one token) on a random Gaussian table; the head is
            // built once, not timed.
            const KernelTable& k = table_for(isa);
            ThreadPool pool(n_threads);
            std::vector<float> table(static_cast<size_t>(vocab) * hidden);
            std::mt19937 rng(7);
            std::normal_distribution<float> gauss;
            for (auto& v : table) v = gauss(rng);
            const TensorView view = float_table(table.data(), vocab, hidden);
            const OutputHead head(view, vocab, hidden, parse_head_kind(kind), pool);
            std::vector<float>().swap(table);
            std::vector<float> h(hidden), out(vocab);
            for (auto& v : h) v = gauss(rng);
            std::vector<int8_t> xq(2 * head.padded_cols() + 64);
            std::vector<int32_t> acc(2 * head.padded_rows());
            py::gil_scoped_release release;
            auto run = [&] { head.logits(h.data(), out.data(), k, pool, xq.data(), acc.data()); };
            return seconds_per_call(run, iters);
        },
        py::arg("isa"), py::arg("kind"), py::arg("vocab"), py::arg("hidden"), py::arg("iters"),
        py::arg("n_threads") = 1);
    m.def(
        "kernel_head_logits",
        [](const std::string& isa, const std::string& kind,
           py::array_t<float, py::array::c_style | py::array::forcecast> table,
           py::array_t<float, py::array::c_style | py::array::forcecast> h, int n_threads) {
            if (table.ndim() != 2 || h.ndim() != 1 || h.shape(0) != table.shape(1)) {
                throw std::invalid_argument("table [vocab, hidden] and h [hidden] expected");
            }
            const int vocab = static_cast<int>(table.shape(0)),
                      hidden = static_cast<int>(table.shape(1));
            const KernelTable& k = table_for(isa);
            ThreadPool pool(n_threads);
            const TensorView view = float_table(table.data(), vocab, hidden);
            const OutputHead head(view, vocab, hidden, parse_head_kind(kind), pool);
            std::vector<int8_t> xq(2 * head.padded_cols() + 64);
            std::vector<int32_t> acc(2 * head.padded_rows());
            py::array_t<float> out(vocab);
            float* out_ptr = out.mutable_data();
            const float* h_ptr = h.data();
            {
                py::gil_scoped_release release;
                head.logits(h_ptr, out_ptr, k, pool, xq.data(), acc.data());
            }
            return out;
        },
        py::arg("isa"), py::arg("kind"), py::arg("table"), py::arg("h"), py::arg("n_threads") = 1);
    m.def(
        "kernel_quantize",
        [](const std::string& isa,
           py::array_t<float, py::array::c_style | py::array::forcecast> x) {
            const KernelTable& k = table_for(isa);
            const int n = static_cast<int>(x.size());
            py::array_t<int8_t> q(n);
            int32_t sum = 0;
            const float s = k.quantize_row(x.data(), n, q.mutable_data(), &sum);
            return py::make_tuple(q, s, sum);
        },
        py::arg("isa"), py::arg("x"));
}
