// NumPy .npy (format 1.0) writer for float32 arrays: how `holdfast logits` hands results to Python.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace holdfast {

// Writes a C-order '<f4' array; throws Error naming the path on failure.
void write_npy_f32(const std::string& path, const std::vector<int64_t>& shape, const float* data);

}  // namespace holdfast
