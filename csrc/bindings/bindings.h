// Shared declarations of the pybind11 layer: each bound area lives in its own file and adds
// itself to the module through one of these functions (module.cpp calls them in order).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <utility>

namespace bitnet::bindings {

namespace py = pybind11;

// Token ids as the engine reads them: contiguous int32 (other integer arrays are converted).
using IdArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

// Runs engine work with the GIL released, so other Python threads run meanwhile (several
// threads can drive separate sessions). Every call into the network goes through here.
template <class Work>
decltype(auto) without_gil(Work&& work) {
    py::gil_scoped_release release;
    return std::forward<Work>(work)();
}

// Calls back into Python from engine work that runs without the GIL (e.g. a progress report).
template <class Work>
decltype(auto) with_gil(Work&& work) {
    py::gil_scoped_acquire gil;
    return std::forward<Work>(work)();
}

// Exception types and the one translator from engine exceptions to Python ones.
void bind_errors(py::module_& m);
// Output, HeadKind, KVType and WeightLayout, named as Python and `info` spell them.
void bind_enums(py::module_& m);
// Which kernel sets run on this CPU.
void bind_isa(py::module_& m);
// ModelConfig and the enums of its fields.
void bind_config(py::module_& m);
void bind_model(py::module_& m);
void bind_session(py::module_& m);
// Kernel entry points for tests and benchmarks (the `testing` submodule).
void bind_test_hooks(py::module_& m);

}  // namespace bitnet::bindings
