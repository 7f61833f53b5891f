// Engine exceptions become Python exceptions here and nowhere else. The standard ones keep
// pybind11's mapping (invalid_argument -> ValueError, out_of_range -> IndexError, other
// runtime/logic errors -> RuntimeError), which the cpu backend turns into BitnetError types.
#include <pybind11/pybind11.h>

#include <exception>

#include "../engine/sampler.h"
#include "../engine/tensor.h"
#include "bindings.h"

namespace bitnet::bindings {

void bind_errors(py::module_& m) {
    // Held for the life of the process: the translator may run after the module object is gone.
    static py::handle checkpoint_content =
        py::exception<CheckpointContentError>(m, "CheckpointContentError", PyExc_ValueError)
            .release();
    static py::handle non_finite =
        py::exception<NonFiniteLogitsError>(m, "NonFiniteLogitsError", PyExc_RuntimeError)
            .release();
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const CheckpointContentError& e) {
            PyErr_SetString(checkpoint_content.ptr(), e.what());
        } catch (const NonFiniteLogitsError& e) {
            PyErr_SetString(non_finite.ptr(), e.what());
        }
    });
}

}  // namespace bitnet::bindings
