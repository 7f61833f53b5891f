// The ternary weight layout as the bindings name it; the engine stores it as a flag
// (ModelConfig::base3_layout).
#pragma once

namespace bitnet::bindings {

// 2 bits per weight, or 5 base-3 digits per byte (~1.6 bits).
enum class WeightLayout { I2R16, I1R16 };

inline const char* weight_layout_name(WeightLayout layout) {
    return layout == WeightLayout::I1R16 ? "i1_r16" : "i2_r16";
}

}  // namespace bitnet::bindings
