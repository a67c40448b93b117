// A file whose layout is fixed up front (a header, then named byte ranges at known offsets: the tensors
// of a safetensors or GGUF file), filled in any order a slice at a time, then committed atomically:
// the data goes to `path + ".tmp"`, which finish() fsyncs and renames over `path`. The streaming
// checkpoint and GGUF writers are this plus their own header.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace holdfast::model {

class SlottedFile {
 public:
  struct Range {
    std::string name;
    uint64_t begin = 0, size = 0;  // begin: relative to data_start
  };
  // Creates the temp file sized `data_start + data_bytes` (gaps read as zeros) and writes `header` at 0.
  // Throws Error naming the file on a duplicate range name or an I/O failure.
  SlottedFile(std::string path, std::string_view header, uint64_t data_start, uint64_t data_bytes,
              const std::vector<Range>& ranges);
  ~SlottedFile();  // removes the temp file unless finish() succeeded
  SlottedFile(const SlottedFile&) = delete;
  SlottedFile& operator=(const SlottedFile&) = delete;

  // Writes `bytes` at byte `at` of range `name`. Throws Error for an unknown name or a slice past its end.
  void write(std::string_view name, uint64_t at, std::span<const uint8_t> bytes);
  // Checks that every range received exactly its size in bytes, then fsyncs and renames.
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
