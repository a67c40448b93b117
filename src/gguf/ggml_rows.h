// F32 rows to the bytes of a ggml tensor type: F32 as is, F16 rounded to nearest even, Q8_0 as ggml's
// quantize_row_q8_0_ref does it (d = amax/127 stored as F16, q = round(w/d) with the unrounded d), so a file
// written here holds the blocks llama.cpp's own quantizer would produce. The decoder is for tests and checks.
#pragma once

#include <cstdint>

#include "gguf/gguf_writer.h"

namespace holdfast::gguf {

// `rows` rows of `n` values each, dense, into rows · row_bytes(t, n) bytes at `out`.
void encode_rows(TensorType t, const float* x, int64_t rows, int64_t n, uint8_t* out);
// One row of `n` values of type t back to F32.
void decode_row(TensorType t, const uint8_t* in, int64_t n, float* out);

}  // namespace holdfast::gguf
