// bitnet_backend._engine.Model: a checkpoint repacked into the kernel layout.
#include "../engine/model.h"

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "layout.h"

namespace bitnet::bindings {

namespace {

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

// The load choices join the architecture here, in the engine's copy of the config.
std::shared_ptr<Model> make_model(const ModelConfig& config, const py::dict& tensors, int n_threads,
                                  const std::string& isa, HeadKind lm_head,
                                  const py::object& progress, KVType kv_cache,
                                  WeightLayout weight_layout, int exact_logits,
                                  const std::string& exact_logits_file, int64_t exact_logits_offset,
                                  const py::object& stored_head, bool release_source_pages) {
    ModelConfig c = config;
    c.base3_layout = weight_layout == WeightLayout::I1R16;
    c.prepacked_head = stored_head.is_none() ? "" : head_kind_name(stored_head.cast<HeadKind>());
    c.release_source_pages = release_source_pages;
    const auto views = views_from_dict(tensors);
    if (exact_logits < 0) {
        throw std::invalid_argument("exact_logits must be >= 0, got " +
                                    std::to_string(exact_logits));
    }
    std::function<void(int, int)> report;
    if (!progress.is_none()) {
        report = [&progress](int done, int total) { with_gil([&] { progress(done, total); }); };
    }
    const ExactLogitsOptions exact{exact_logits, exact_logits_file, exact_logits_offset};
    return without_gil([&] {
        return std::make_shared<Model>(c, views, n_threads, isa, lm_head, report, kv_cache, exact);
    });
}

// Views of the engine's own memory, each keeping the engine alive: `bitnet convert` writes
// them out without a second copy of the weights in memory.
py::dict export_layout(const py::object& self) {
    const Model& mdl = self.cast<const Model&>();
    py::dict out;
    for (const auto& item : mdl.export_layout()) {
        const TensorView& v = item.second;
        if (v.dtype == DType::F32) {
            out[py::str(item.first)] =
                py::array_t<float>({v.numel()}, {static_cast<py::ssize_t>(sizeof(float))},
                                   static_cast<const float*>(v.data), self);
        } else {
            out[py::str(item.first)] =
                py::array_t<uint8_t>({v.numel()}, {static_cast<py::ssize_t>(1)},
                                     static_cast<const uint8_t*>(v.data), self);
        }
    }
    return out;
}

// One step for every (session, ids): only the last logits of each are kept.
void eval_batch(Model& mdl, const std::vector<std::pair<Session*, IdArray>>& batch) {
    std::vector<BatchItem> items;
    for (const auto& entry : batch) {
        items.push_back({entry.first, entry.second.data(), static_cast<int>(entry.second.size()),
                         Output::LastLogits, nullptr});
    }
    without_gil([&] { mdl.eval_batch(items.data(), static_cast<int>(items.size())); });
}

// Fresh forwards of several texts in shared steps: [len, hidden] each.
std::vector<py::array_t<float>> hidden_states_batch(const std::shared_ptr<Model>& mdl,
                                                    const std::vector<IdArray>& batch) {
    std::vector<std::unique_ptr<Session>> sessions;
    std::vector<py::array_t<float>> outs;
    std::vector<BatchItem> items;
    for (const auto& ids : batch) {
        const int n = static_cast<int>(ids.size());
        sessions.push_back(std::make_unique<Session>(mdl, std::max(n, 1)));
        outs.emplace_back(std::vector<py::ssize_t>{n, mdl->config().hidden_size});
        items.push_back(
            {sessions.back().get(), ids.data(), n, Output::Hidden, outs.back().mutable_data()});
    }
    without_gil([&] { mdl->eval_batch(items.data(), static_cast<int>(items.size())); });
    return outs;
}

// The pool's counters (ThreadPool::Stats) by name.
py::dict thread_stats(Model& mdl) {
    const ThreadPool::Stats s = mdl.pool().stats();
    py::dict d;
    d["shared_regions"] = s.shared_regions;
    d["solo_regions"] = s.solo_regions;
    d["short_regions"] = s.short_regions;
    d["caller_chunks"] = s.caller_chunks;
    d["worker_chunks"] = s.worker_chunks;
    d["lonely_regions"] = s.lonely_regions;
    d["caller_wait_ns"] = s.caller_wait_ns;
    d["caller_sleeps"] = s.caller_sleeps;
    return d;
}

}  // namespace

void bind_model(py::module_& m) {
    py::class_<Model, std::shared_ptr<Model>>(m, "Model")
        .def(py::init(&make_model), py::arg("config"), py::arg("tensors"), py::arg("n_threads"),
             py::arg("isa") = "", py::arg("lm_head") = HeadKind::Q8,
             py::arg("progress") = py::none(), py::arg("kv_cache") = KVType::F32,
             py::arg("weight_layout") = WeightLayout::I2R16, py::arg("exact_logits") = 0,
             py::arg("exact_logits_file") = "", py::arg("exact_logits_offset") = 0,
             py::arg("stored_head") = py::none(), py::arg("release_source_pages") = false)
        // A copy: the engine's own config must not change under it.
        .def_property_readonly("config", [](const Model& mdl) { return mdl.config(); })
        .def_property_readonly("kv_cache", &Model::kv_type)
        .def_property_readonly("lm_head", [](const Model& mdl) { return mdl.head().kind(); })
        .def_property_readonly("exact_logits",
                               [](const Model& mdl) { return mdl.exact_logits().top(); })
        .def_property_readonly("isa",
                               [](const Model& mdl) { return std::string(mdl.kernels().isa); })
        .def_property_readonly("n_threads", &Model::n_threads)
        .def_property(
            "adaptive_threads", [](Model& mdl) { return mdl.pool().adaptive(); },
            [](Model& mdl, bool adaptive) { mdl.pool().set_adaptive(adaptive); })
        .def("thread_stats", &thread_stats)
        .def_property_readonly("weight_layout",
                               [](const Model& mdl) {
                                   return mdl.config().base3_layout ? WeightLayout::I1R16
                                                                    : WeightLayout::I2R16;
                               })
        .def_property_readonly("vocab_size",
                               [](const Model& mdl) { return mdl.config().vocab_size; })
        .def_property_readonly("hidden_size",
                               [](const Model& mdl) { return mdl.config().hidden_size; })
        .def("export_layout", &export_layout)
        .def_property_readonly("weight_bytes", &Model::weight_bytes)
        .def_property_readonly("scratch_bytes", &Model::scratch_bytes)
        .def("eval_batch", &eval_batch, py::arg("items"))
        .def("hidden_states_batch", &hidden_states_batch, py::arg("batch"));
}

}  // namespace bitnet::bindings
