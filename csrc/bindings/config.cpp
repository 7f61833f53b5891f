// bitnet_backend._engine.ModelConfig and the enums of its fields: the one shape in which a
// model's architecture crosses into the engine. Field and value names are those of the Python
// ModelConfig / architecture table ("relu2", "divide", tensor names).
#include "../engine/config.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings.h"

namespace bitnet::bindings {

void bind_config(py::module_& m) {
    py::enum_<FfnActivation>(m, "Activation", "The feed-forward activation: act(gate) * up.")
        .value("relu2", FfnActivation::Relu2)
        .value("silu", FfnActivation::Silu);
    py::enum_<WeightScale>(m, "WeightScale", "How a BitLinear applies its weight_scale.")
        .value("divide", WeightScale::Divide)
        .value("multiply", WeightScale::Multiply);
    py::class_<ModelConfig>(m, "ModelConfig", "A model's architecture as the engine runs it.")
        .def(py::init<>())
        .def_readwrite("hidden_size", &ModelConfig::hidden_size)
        .def_readwrite("intermediate_size", &ModelConfig::intermediate_size)
        .def_readwrite("num_hidden_layers", &ModelConfig::num_hidden_layers)
        .def_readwrite("num_attention_heads", &ModelConfig::num_attention_heads)
        .def_readwrite("num_key_value_heads", &ModelConfig::num_key_value_heads)
        .def_readwrite("head_dim", &ModelConfig::head_dim)
        .def_readwrite("vocab_size", &ModelConfig::vocab_size)
        .def_readwrite("rms_norm_eps", &ModelConfig::rms_norm_eps)
        .def_readwrite("max_position_embeddings", &ModelConfig::max_position_embeddings)
        .def_readwrite("tie_word_embeddings", &ModelConfig::tie_word_embeddings)
        .def_readwrite("activation", &ModelConfig::activation)
        .def_readwrite("weight_scale", &ModelConfig::weight_scale)
        .def_readwrite("attn_sub_norm", &ModelConfig::attn_sub_norm)
        .def_readwrite("ffn_sub_norm", &ModelConfig::ffn_sub_norm)
        .def_readwrite("linear_norm", &ModelConfig::linear_norm)
        .def_readwrite("linear_norm_eps", &ModelConfig::linear_norm_eps)
        .def_readwrite("rope_inv_freq", &ModelConfig::rope_inv_freq);
}

}  // namespace bitnet::bindings
