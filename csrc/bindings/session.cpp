// bitnet_backend._engine.Session: one sequence and its KV cache.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <vector>

#include "../engine/model.h"
#include "bindings.h"

namespace bitnet::bindings {

namespace {

using MaskArray = py::array_t<uint32_t, py::array::c_style | py::array::forcecast>;

// Floats per position that `output` returns (0: nothing returned).
int output_width(const Session& s, Output output) {
    switch (output) {
        case Output::AllLogits:
            return s.model().config().vocab_size;
        case Output::Hidden:
            return s.model().config().hidden_size;
        case Output::None:
        case Output::LastLogits:
            break;
    }
    return 0;
}

// [n, width] floats for Output::all / Output::hidden, else None.
py::object eval(Session& s, const IdArray& ids, Output output) {
    const int n = static_cast<int>(ids.size());
    const int width = output_width(s, output);
    py::array_t<float> result;
    float* out = nullptr;
    if (width > 0) {
        result = py::array_t<float>({n, width});
        out = result.mutable_data();
    }
    const int32_t* ptr = ids.data();
    without_gil([&] { s.eval(ptr, n, output, out); });
    if (out == nullptr) return py::none();
    return std::move(result);
}

py::array_t<float> last_logits(const Session& s) {
    if (!s.has_logits()) throw std::logic_error("no logits yet: eval() first");
    const int vocab = s.model().config().vocab_size;
    py::array_t<float> out(vocab);
    std::copy(s.last_logits(), s.last_logits() + vocab, out.mutable_data());
    return out;
}

SamplerParams sampler_params(double temperature, int top_k, double top_p, double min_p,
                             float repeat_penalty, int repeat_last_n) {
    SamplerParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = repeat_penalty;
    p.repeat_last_n = repeat_last_n;
    return p;
}

int sample(Session& s, double temperature, int top_k, double top_p, double min_p,
           float repeat_penalty, int repeat_last_n, const py::object& mask) {
    const SamplerParams p =
        sampler_params(temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n);
    if (mask.is_none()) return without_gil([&] { return s.sample(p, nullptr, 0); });
    const auto words = mask.cast<MaskArray>();
    const uint32_t* ptr = words.data();
    const size_t n = static_cast<size_t>(words.size());
    return without_gil([&] { return s.sample(p, ptr, n); });
}

// One row of sample_batch: a session and the options of its next token.
using SampleRow =
    std::tuple<Session*, double, int, double, double, float, int, std::optional<MaskArray>>;

// Why one row of sample_batch failed, as (kind, message): "non_finite" for broken logits,
// "invalid" for anything else the sampler refused (the cpu backend names the error types).
py::tuple sample_error(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const NonFiniteLogitsError& e) {
        return py::make_tuple("non_finite", e.what());
    } catch (const std::exception& e) {
        return py::make_tuple("invalid", e.what());
    } catch (...) {
        return py::make_tuple("invalid", "unknown error");
    }
}

// The next token of every row, sampled with the GIL released once for all of them (a step's
// rows would otherwise hand the GIL to other threads once per row): each item is the token,
// or a (kind, message) tuple for a row that failed alone.
py::list sample_batch(const std::vector<SampleRow>& rows) {
    const size_t n = rows.size();
    std::vector<int> tokens(n, -1);
    std::vector<std::exception_ptr> errors(n);
    without_gil([&] {
        for (size_t i = 0; i < n; ++i) {
            const auto& [session, temperature, top_k, top_p, min_p, penalty, last_n, mask] =
                rows[i];
            const SamplerParams p =
                sampler_params(temperature, top_k, top_p, min_p, penalty, last_n);
            try {
                tokens[i] =
                    mask ? session->sample(p, mask->data(), static_cast<size_t>(mask->size()))
                         : session->sample(p, nullptr, 0);
            } catch (...) {
                errors[i] = std::current_exception();
            }
        }
    });
    py::list out;
    for (size_t i = 0; i < n; ++i) {
        if (errors[i]) {
            out.append(sample_error(errors[i]));
        } else {
            out.append(tokens[i]);
        }
    }
    return out;
}

}  // namespace

void bind_session(py::module_& m) {
    py::class_<Session>(m, "Session")
        .def(py::init([](std::shared_ptr<Model> model, int n_ctx) {
                 return std::make_unique<Session>(std::move(model), n_ctx);
             }),
             py::arg("model"), py::arg("n_ctx"))
        .def_property_readonly("n_past", &Session::n_past)
        .def_property_readonly("n_ctx", &Session::n_ctx)
        .def_property_readonly("tokens", [](const Session& s) { return s.tokens(); })
        .def("eval", &eval, py::arg("ids"), py::arg("output") = Output::LastLogits)
        .def("last_logits", &last_logits)
        .def("sample", &sample, py::arg("temperature"), py::arg("top_k"), py::arg("top_p"),
             py::arg("min_p"), py::arg("repeat_penalty"), py::arg("repeat_last_n"),
             py::arg("mask") = py::none())
        .def("set_seed", &Session::set_seed)
        .def("truncate", &Session::truncate)
        .def(
            "copy_prefix",
            [](Session& s, const Session& src, int n) {
                without_gil([&] { s.copy_prefix(src, n); });
            },
            py::arg("src"), py::arg("n"));
    // After the class: its signature names the Python type.
    m.def("sample_batch", &sample_batch, py::arg("rows"),
          "Samples the next token of several sessions with one GIL release: each row is "
          "(session, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, mask); "
          "each result the token or a (kind, message) tuple for a row that failed.");
}

}  // namespace bitnet::bindings
