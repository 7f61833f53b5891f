// A ternary weight matrix in the kernel layout (I2_R16, see kernels/kernels.h), built once at
// load from checkpoint tensors: packed HF uint8 planes or float master weights (absmean
// quantized exactly like transformers' WeightQuant). Several linears that read the same input
// (q/k/v, gate/up) are fused into one matrix so decode streams them in one pass.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../kernels/kernels.h"
#include "aligned_buffer.h"
#include "tensor.h"
#include "thread_pool.h"

namespace bitnet {

// One checkpoint linear: its weight tensor and, for packed weights, the weight_scale value.
struct LinearSource {
    std::string name;
    TensorView weight;
    float weight_scale = 1.0f;  // packed weights only
};

class TernaryMatrix {
 public:
    TernaryMatrix() = default;
    // Stacks the parts' rows. `divide`: output = acc / (scale * s_x) (linear_class
    // "bitlinear"), else output = acc / s_x * scale ("autobitlinear" and online weights).
    // `storage` (optional, 64-byte aligned, packed_bytes() long) lets the model place every
    // matrix in one huge-page arena; otherwise the matrix owns its memory.
    // `base3` selects the ~1.6-bit I1_R16 layout instead of the 2-bit I2_R16 one.
    static TernaryMatrix build(const std::vector<LinearSource>& parts, int cols, bool divide,
                               ThreadPool& pool, uint8_t* storage = nullptr, bool base3 = false);
    static int rows_of(const std::vector<LinearSource>& parts);
    // From a layout saved by `bitnet convert`: codes already in `storage`, one scale per row.
    static TernaryMatrix from_prepacked(int rows, int cols, bool divide, const float* scales,
                                        uint8_t* storage, bool base3);
    static size_t packed_bytes(int rows, int cols, bool base3);
    static int cols_per_group(bool base3) { return base3 ? kColGroup5 : kColGroup; }

    // From explicit ternary values w[rows][cols] in {-1, 0, 1} (unit scales): kernel tests.
    static TernaryMatrix from_ternary(const int8_t* w, int rows, int cols, ThreadPool& pool,
                                      bool base3 = false);

    PackedTernary packed() const { return {codes_, n_row_blocks_, n_col_groups_}; }
    int rows() const { return rows_; }
    int cols() const { return cols_; }
    int padded_rows() const { return n_row_blocks_ * kRowBlock; }
    int padded_cols() const { return n_col_groups_ * cols_per_group(base3_); }
    bool base3() const { return base3_; }
    int n_row_blocks() const { return n_row_blocks_; }
    bool divide() const { return divide_; }
    const float* row_scales() const { return scales_.data(); }
    size_t bytes() const { return packed_bytes(rows_, cols_, base3_); }
    // Bytes of the per-row scales and input norms (read with the codes by every product).
    size_t side_bytes() const {
        size_t n = scales_.size();
        for (const auto& norm : input_norms_) n += norm.size();
        return n * sizeof(float);
    }

    // BitLinears with an input norm (quantization_config use_rms_norm): part i (rows up to
    // part_ends[i]) normalizes its input with weights[i] before quantizing it, so the fused
    // parts no longer share one quantized input. Empty `weights`: no input norms.
    void set_input_norms(std::vector<std::vector<float>> weights, std::vector<int> part_ends,
                         float eps);
    bool has_input_norms() const { return !input_norms_.empty(); }
    const std::vector<std::vector<float>>& input_norms() const { return input_norms_; }
    const std::vector<int>& part_ends() const { return part_ends_; }
    float input_norm_eps() const { return input_norm_eps_; }

 private:
    int rows_ = 0, cols_ = 0, n_row_blocks_ = 0, n_col_groups_ = 0;
    bool divide_ = true;
    bool base3_ = false;
    uint8_t* codes_ = nullptr;
    AlignedBuffer owned_;
    std::vector<float> scales_;
    std::vector<std::vector<float>> input_norms_;
    std::vector<int> part_ends_;
    float input_norm_eps_ = 1e-6f;
};

}  // namespace bitnet
