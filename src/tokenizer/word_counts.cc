#include "tokenizer/word_counts.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace holdfast::tokenizer {
namespace {

constexpr size_t kNoCut = std::string_view::npos;
constexpr size_t kMinChunkBytes = size_t{256} << 10;

bool printable_ascii(char c) { return c > ' ' && c <= '~'; }

}  // namespace

WordCounter::WordCounter(std::span<const std::string> added_tokens, std::span<const SplitPattern> splits)
    : splits_(splits.begin(), splits.end()) {
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    added_.add(added_tokens[i], static_cast<int32_t>(i));
    max_added_len_ = std::max(max_added_len_, added_tokens[i].size());
    added_has_newline_ |= added_tokens[i].find('\n') != std::string::npos;
  }
}

// Why a cut before buf[q] (buf[q - 1] == '\n', buf[q] printable ASCII) is safe: no alternative of the Split
// patterns matches '\n' followed by a non-space (the whitespace branches end at the last line break of a run,
// the punctuation branch only takes trailing CR/LF, the letter branch's optional prefix excludes CR/LF, and
// digit/CJK runs contain no '\n'), so the pieces of the whole text are the pieces of the two halves. An added
// token can only straddle the cut if it contains '\n' itself; that case is checked explicitly.
bool WordCounter::is_cut(std::string_view buf, size_t q) const {
  if (q == 0 || q >= buf.size() || buf[q - 1] != '\n' || !printable_ascii(buf[q])) return false;
  if (!added_has_newline_) return true;
  // The longest added token starting at s, for every s whose token could reach past q; undecidable (so no
  // cut) until the buffer holds every byte such a token could cover.
  if (q + max_added_len_ > buf.size()) return false;
  const std::string_view window = buf.substr(0, q + max_added_len_);
  for (size_t s = q > max_added_len_ ? q - max_added_len_ : 0; s < q; ++s) {
    const auto m = added_.find(window, s);
    if (m.id >= 0 && m.begin == s && m.end > q) return false;
  }
  return true;
}

size_t WordCounter::next_cut(std::string_view buf, size_t from) const {
  for (size_t p = from == 0 ? 0 : from - 1; p < buf.size(); ++p) {
    const void* nl = std::memchr(buf.data() + p, '\n', buf.size() - p);
    if (!nl) return kNoCut;
    p = static_cast<size_t>(static_cast<const char*>(nl) - buf.data());
    if (is_cut(buf, p + 1)) return p + 1;
  }
  return kNoCut;
}

size_t WordCounter::last_cut(std::string_view buf) const {
  for (size_t n = buf.size(); n > 0;) {
    const void* nl = memrchr(buf.data(), '\n', n);
    if (!nl) return 0;
    const auto p = static_cast<size_t>(static_cast<const char*>(nl) - buf.data());
    if (is_cut(buf, p + 1)) return p + 1;
    n = p;
  }
  return 0;
}

void WordCounter::count_range(std::string_view text, WordCounts& counts) const {
  std::vector<std::string_view> pieces;
  PreTokenizeScratch scratch;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto m = added_.find(text, pos);
    pieces.clear();
    pre_tokenize(splits_, text.substr(pos, m.begin - pos), pieces, scratch);
    for (std::string_view piece : pieces) {
      auto it = counts.find(piece);
      if (it == counts.end()) it = counts.emplace(std::string(piece), 0).first;
      ++it->second;
    }
    pos = m.end;
  }
}

size_t WordCounter::count_block(std::string_view buf, bool final, Context& ctx) {
  size_t end = buf.size();
  if (!final) end = last_cut(buf);  // the rest waits for the next block
  const size_t target = std::max(kMinChunkBytes, end / (4 * static_cast<size_t>(ctx.n_threads)));
  std::vector<size_t> starts{0};
  while (starts.back() + target < end) {
    const size_t q = next_cut(buf.substr(0, end), starts.back() + target);
    if (q == kNoCut) break;
    starts.push_back(q);
  }
  starts.push_back(end);
  if (per_thread_.size() < static_cast<size_t>(ctx.n_threads)) per_thread_.resize(static_cast<size_t>(ctx.n_threads));
  ctx.pool.parallel_for(starts.size() - 1, [&](size_t begin, size_t stop, int thread) {
    for (size_t i = begin; i < stop; ++i) {
      count_range(buf.substr(starts[i], starts[i + 1] - starts[i]), per_thread_[static_cast<size_t>(thread)]);
    }
  });
  bytes_ += end;
  return end;
}

void WordCounter::add_text(std::string_view text, Context& ctx) { count_block(text, /*final=*/true, ctx); }

void WordCounter::add_file(const std::string& path, Context& ctx, const std::function<void(uint64_t)>& on_block,
                           size_t block_bytes) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw InputError(fmt::format("training input '{}' is a directory, not a text file", path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("cannot open training input '{}': {}", path, std::strerror(errno)));
  block_bytes = std::max<size_t>(block_bytes, 1);
  // Small files get a buffer of their own size (+1 to see the end), not a whole block.
  const uintmax_t size = std::filesystem::file_size(path, ec);
  std::string buf;
  uint64_t read = 0;
  for (;;) {
    const size_t old = buf.size();
    const uintmax_t left = ec ? block_bytes : size - std::min<uintmax_t>(size, read) + 1;
    const auto want = static_cast<size_t>(std::min<uintmax_t>(block_bytes, left));
    buf.resize(old + want);
    in.read(buf.data() + old, static_cast<std::streamsize>(want));
    const auto got = static_cast<size_t>(in.gcount());
    if (in.bad()) throw InputError(fmt::format("error reading training input '{}': {}", path, std::strerror(errno)));
    buf.resize(old + got);
    read += got;
    const bool eof = in.eof();
    buf.erase(0, count_block(buf, eof, ctx));
    if (on_block) on_block(read);
    if (eof) return;
  }
}

WordCounts WordCounter::take() {
  if (per_thread_.empty()) return {};
  auto largest = std::max_element(per_thread_.begin(), per_thread_.end(),
                                  [](const WordCounts& a, const WordCounts& b) { return a.size() < b.size(); });
  WordCounts out = std::move(*largest);
  for (WordCounts& m : per_thread_) {
    if (&m == &*largest) continue;
    for (auto& [word, n] : m) out[word] += n;
  }
  per_thread_.clear();
  return out;
}

}  // namespace holdfast::tokenizer
