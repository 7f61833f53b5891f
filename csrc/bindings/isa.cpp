// Which kernel sets run on this CPU. The choice between them (the BITNET_ISA override and the
// "auto" policies) is made by the cpu backend in Python, in one function; nothing here reads
// the environment.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <exception>
#include <string>
#include <vector>

#include "../kernels/kernels.h"
#include "bindings.h"

namespace bitnet::bindings {

void bind_isa(py::module_& m) {
    m.def(
        "available_isas",
        []() {
            std::vector<std::string> out;
            for (const char* isa : {"ref", "avx2", "avx512", "neon"}) {
                try {
                    select_kernels(isa);
                    out.emplace_back(isa);
                } catch (const std::exception&) {
                }
            }
            return out;
        },
        "The ISAs whose kernels are built in and run on this CPU.");
    m.def(
        "best_isa", []() { return std::string(select_kernels(nullptr).isa); },
        "The fastest ISA that runs here (what an engine given no ISA uses).");
    m.def(
        "base3_uses_vbmi",
        []() { return cpu_has_avx512_vbmi() && ternary5_gemm_avx512_vbmi() != nullptr; },
        "Whether the avx512 kernels decode the base-3 layout with VBMI byte permutes here.");
}

}  // namespace bitnet::bindings
