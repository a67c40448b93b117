// Included first by the Q8 / Q4 kernel translation units, before any Highway header: their per-target
// bodies keep small fixed-size arrays of vectors, which sizeless SVE / RVV vectors cannot be, so those
// targets are left out (ARM runs the NEON build). Highway selects per translation unit, by design.
#pragma once

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif
