// pybind11 module bitnet_backend._engine: wiring only. Every call that runs the network
// releases the GIL, so several Python threads can drive separate sessions.
#include "bindings.h"

PYBIND11_MODULE(_engine, m) {
    namespace b = bitnet::bindings;
    m.doc() = "BitNet b1.58 CPU engine (C++).";
    b::bind_errors(m);
    b::bind_enums(m);
    b::bind_isa(m);
    b::bind_config(m);
    b::bind_model(m);
    b::bind_session(m);
    auto testing = m.def_submodule("testing", "Kernel entry points for tests and benchmarks.");
    b::bind_test_hooks(testing);
}
