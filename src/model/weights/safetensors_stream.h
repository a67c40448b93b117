// A safetensors file written piece by piece (MODEL-SPEC §2.2): every tensor is declared up front, so
// the header and each tensor's offset are fixed; the data then arrives in any order, a slice at a
// time, and a converter holds only the slice it is producing. finish() replaces the target file
// atomically, as SafetensorsWriter::write does.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/weights/safetensors.h"

namespace holdfast::model {

class SafetensorsStreamWriter {
 public:
  struct Tensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
  };
  // Creates `path + ".tmp"` sized for all tensors and writes the header. Throws Error on a duplicate
  // or invalid tensor, or an I/O failure.
  SafetensorsStreamWriter(std::string path, const std::vector<Tensor>& tensors,
                          const std::map<std::string, std::string>& metadata);
  ~SafetensorsStreamWriter();  // removes the temp file unless finish() succeeded
  SafetensorsStreamWriter(const SafetensorsStreamWriter&) = delete;
  SafetensorsStreamWriter& operator=(const SafetensorsStreamWriter&) = delete;

  // Writes `bytes` at byte `at` of tensor `name`'s data. Throws Error for an unknown tensor or a
  // range past its end.
  void write(std::string_view name, uint64_t at, std::span<const uint8_t> bytes);
  // Checks that every tensor received exactly its size in bytes, then fsyncs and renames.
  void finish();

 private:
  struct Slot {
    uint64_t begin = 0, size = 0, written = 0;
  };
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t data_start_ = 0;
  std::map<std::string, Slot, std::less<>> slots_;
};

}  // namespace holdfast::model
