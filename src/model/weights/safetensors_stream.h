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
#include "model/weights/slotted_file.h"

namespace holdfast::model {

class SafetensorsStreamWriter {
 public:
  struct Tensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
  };
  // Creates `path + ".tmp"` sized for all tensors and writes the header (the temp file is removed
  // unless finish() succeeds). Throws Error on a duplicate or invalid tensor, or an I/O failure.
  SafetensorsStreamWriter(std::string path, const std::vector<Tensor>& tensors,
                          const std::map<std::string, std::string>& metadata);

  // Writes `bytes` at byte `at` of tensor `name`'s data. Throws Error for an unknown tensor or a
  // range past its end.
  void write(std::string_view name, uint64_t at, std::span<const uint8_t> bytes) { file_.write(name, at, bytes); }
  // Checks that every tensor received exactly its size in bytes, then fsyncs and renames.
  void finish() { file_.finish(); }

 private:
  SlottedFile file_;
};

}  // namespace holdfast::model
