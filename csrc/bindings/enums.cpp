// Engine choices as Python enums: each value is named exactly as the options, `info` and the
// converted-checkpoint metadata spell it ("int8", "q6", "bf16", "i1_r16", ...).
#include <pybind11/pybind11.h>

#include "../engine/batch.h"
#include "../engine/kv_cache.h"
#include "../engine/output_head.h"
#include "bindings.h"
#include "layout.h"

namespace bitnet::bindings {

void bind_enums(py::module_& m) {
    py::enum_<Output>(m, "Output", "What an eval step returns.")
        .value("none", Output::None)
        .value("last", Output::LastLogits)
        .value("all", Output::AllLogits)
        .value("hidden", Output::Hidden);
    py::enum_<HeadKind>(m, "HeadKind", "Storage of the output head.")
        .value(head_kind_name(HeadKind::Q8), HeadKind::Q8)
        .value(head_kind_name(HeadKind::Q6), HeadKind::Q6)
        .value(head_kind_name(HeadKind::Q4), HeadKind::Q4)
        .value(head_kind_name(HeadKind::F32), HeadKind::F32);
    py::enum_<KVType>(m, "KVType", "Element type of the KV cache.")
        .value(kv_type_name(KVType::F32), KVType::F32)
        .value(kv_type_name(KVType::BF16), KVType::BF16);
    py::enum_<WeightLayout>(m, "WeightLayout", "Packing of the ternary weights.")
        .value(weight_layout_name(WeightLayout::I2R16), WeightLayout::I2R16)
        .value(weight_layout_name(WeightLayout::I1R16), WeightLayout::I1R16);
}

}  // namespace bitnet::bindings
