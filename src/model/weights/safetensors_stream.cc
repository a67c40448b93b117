#include "model/weights/safetensors_stream.h"

#include <algorithm>

namespace holdfast::model {

namespace {

SlottedFile open_file(std::string path, const std::vector<SafetensorsStreamWriter::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  using Tensor = SafetensorsStreamWriter::Tensor;
  std::vector<const Tensor*> order;
  for (const Tensor& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const Tensor* a, const Tensor* b) {
    return safetensors_alignment_order(a->dtype, a->name, b->dtype, b->name);
  });
  std::vector<HeaderEntry> entries;
  std::vector<SlottedFile::Range> ranges;
  uint64_t offset = 0;
  for (const Tensor* t : order) {
    const uint64_t n = safetensors_entry_bytes(t->name, t->dtype, t->shape);
    entries.push_back({t->name, t->dtype, t->shape, offset, offset + n});
    ranges.push_back({t->name, offset, n});
    offset += n;
  }
  const std::string head = safetensors_header_bytes(entries, metadata);
  return SlottedFile(std::move(path), head, head.size(), offset, ranges);
}

}  // namespace

SafetensorsStreamWriter::SafetensorsStreamWriter(std::string path, const std::vector<Tensor>& tensors,
                                                 const std::map<std::string, std::string>& metadata)
    : file_(open_file(std::move(path), tensors, metadata)) {}

}  // namespace holdfast::model
