// Element types of checkpoint tensors (safetensors dtype strings) and scalar conversions to/from F32
// (MODEL-SPEC §2.4). Bulk conversions live in kernels/. kQ8/kQ4 are not safetensors dtypes: they tag
// weights stored as block-quantized I8/U8 + F16 scale tensors (docs/quant_format.md, kernels/quant.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace holdfast {

enum class DType { kBool, kU8, kI8, kF8E4M3, kF8E5M2, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kI64, kU64, kF64,
                   kQ8, kQ4 };

constexpr bool is_block_quantized(DType t) { return t == DType::kQ8 || t == DType::kQ4; }

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kBool: case DType::kU8: case DType::kI8: case DType::kF8E4M3: case DType::kF8E5M2: return 1;
    case DType::kI16: case DType::kU16: case DType::kF16: case DType::kBF16: return 2;
    case DType::kI32: case DType::kU32: case DType::kF32: return 4;
    case DType::kI64: case DType::kU64: case DType::kF64: return 8;
    case DType::kQ8: case DType::kQ4: return 0;  // not element-addressable: see kernels/quant.h
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kBool: return "BOOL";
    case DType::kU8: return "U8";
    case DType::kI8: return "I8";
    case DType::kF8E4M3: return "F8_E4M3";
    case DType::kF8E5M2: return "F8_E5M2";
    case DType::kI16: return "I16";
    case DType::kU16: return "U16";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
    case DType::kU32: return "U32";
    case DType::kF32: return "F32";
    case DType::kI64: return "I64";
    case DType::kU64: return "U64";
    case DType::kF64: return "F64";
    case DType::kQ8: return "Q8";
    case DType::kQ4: return "Q4";
  }
  return "?";
}

inline std::optional<DType> parse_dtype(std::string_view s) {
  for (DType t : {DType::kBool, DType::kU8, DType::kI8, DType::kF8E4M3, DType::kF8E5M2, DType::kI16,
                  DType::kU16, DType::kF16, DType::kBF16, DType::kI32, DType::kU32, DType::kF32,
                  DType::kI64, DType::kU64, DType::kF64})
    if (dtype_name(t) == s) return t;
  return std::nullopt;
}

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(uint32_t(h) << 16); }

// Round to nearest, ties to even; NaN stays a quiet NaN with its sign.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if (std::isnan(f)) return uint16_t(0x7FC0 | ((u >> 16) & 0x8000));
  u += 0x7FFF + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

// Round to nearest, ties to even; overflow goes to infinity, NaN stays NaN.
inline uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_to_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7FFFFFFF;
  if (a > 0x7F800000) return uint16_t(sign | 0x7E00);  // NaN
  if (a >= 0x477FF000) return uint16_t(sign | 0x7C00);  // rounds to >= 65520: infinity
  if (a < 0x38800000) {  // below 2^-14: subnormal f16, value = m * 2^-24
    const float m = std::nearbyint(bits_to_f32(a) * 16777216.0f);  // exact scaling, RNE (default mode)
    return uint16_t(sign | uint16_t(m));
  }
  uint32_t r = a + 0xFFF + ((a >> 13) & 1);  // round the 13 dropped bits to nearest even
  return uint16_t(sign | uint16_t((r - 0x38000000) >> 13));
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    float v = std::ldexp(float(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_f32(sign | 0x7F800000 | (mant << 13));
  return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

// float8_e4m3fn: bias 7, no infinities, S.1111.111 is NaN, max finite 448.
inline float f8e4m3_to_f32(uint8_t b) {
  int e = (b >> 3) & 0xF, m = b & 7;
  float v;
  if (e == 15 && m == 7) v = NAN;
  else if (e == 0) v = std::ldexp(float(m), -9);
  else v = std::ldexp(1.0f + m / 8.0f, e - 7);
  return (b & 0x80) ? -v : v;
}

// Round to nearest even with saturation to +-448 (MODEL-SPEC §2.5 re-quantization).
inline uint8_t f32_to_f8e4m3(float f) {
  uint8_t sign = std::signbit(f) ? 0x80 : 0;
  if (std::isnan(f)) return 0x7F | sign;
  float a = std::fabs(f);
  if (a >= 448.0f) return 0x7E | sign;
  uint8_t best = 0;
  // Exhaustive nearest search over the 127 non-negative finite codes; ties go to the even code.
  float best_err = INFINITY;
  for (int c = 0; c <= 0x7E; ++c) {
    float err = std::fabs(f8e4m3_to_f32(uint8_t(c)) - a);
    if (err < best_err || (err == best_err && (c & 1) == 0)) {
      best_err = err;
      best = uint8_t(c);
    }
  }
  return best | sign;
}

}  // namespace holdfast
