// bitnet_backend._engine.Session: one sequence and its KV cache.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <utility>

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

int sample(Session& s, double temperature, int top_k, double top_p, double min_p,
           float repeat_penalty, int repeat_last_n, const py::object& mask) {
    SamplerParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = repeat_penalty;
    p.repeat_last_n = repeat_last_n;
    if (mask.is_none()) return without_gil([&] { return s.sample(p, nullptr, 0); });
    const auto words = mask.cast<MaskArray>();
    const uint32_t* ptr = words.data();
    const size_t n = static_cast<size_t>(words.size());
    return without_gil([&] { return s.sample(p, ptr, n); });
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
}

}  // namespace bitnet::bindings
