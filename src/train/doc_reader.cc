// Document streaming for `data prepare`: buffered line reads, documents assembled per split mode,
// long documents handed out in pieces at tokenizer-safe cut points.
#include "train/doc_reader.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace holdfast::train {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
bool has_non_space(std::string_view s) {
  for (char c : s)
    if (!is_space(c)) return true;
  return false;
}
// A piece may start here when the previous byte is '\n': an ASCII printable, non-space character.
bool safe_start(char c) { return c > 0x20 && c < 0x7f; }

// Drops one trailing line terminator ("\n" or "\r\n").
void strip_newline(std::string& s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (!s.empty() && s.back() == '\r') s.pop_back();
}

}  // namespace

DocumentReader::DocumentReader(std::vector<std::string> inputs, DocReaderOptions opts)
    : inputs_(std::move(inputs)), opts_(std::move(opts)), buf_(size_t(1) << 20) {
  if (opts_.chunk_bytes < 1) throw InputError(fmt::format("chunk_bytes must be >= 1, got {}", opts_.chunk_bytes));
  if (opts_.split == TextSplit::Lines && opts_.doc_lines < 1)
    throw InputError(fmt::format("doc_lines must be >= 1, got {}", opts_.doc_lines));
  for (const std::string& path : inputs_) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) throw InputError(fmt::format("{}: cannot read input: {}", path, std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) throw InputError(fmt::format("{}: input is not a regular file", path));
    bytes_total_ += int64_t(st.st_size);
  }
}

DocumentReader::~DocumentReader() {
  if (file_) std::fclose(file_);
}

bool DocumentReader::open_next_file() {
  if (file_) {
    std::fclose(file_);
    file_ = nullptr;
    bytes_done_ += file_pos_;
    file_pos_ = 0;
    ++file_idx_;
  }
  if (file_idx_ >= inputs_.size()) return false;
  const std::string& path = inputs_[file_idx_];
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw InputError(fmt::format("{}: cannot open input: {}", path, std::strerror(errno)));
  buf_pos_ = buf_len_ = 0;
  line_no_ = 0;
  file_eof_ = false;
  return true;
}

bool DocumentReader::read_line(std::string& line) {
  line.clear();
  for (;;) {
    if (buf_pos_ == buf_len_) {
      if (file_eof_) break;
      buf_len_ = std::fread(buf_.data(), 1, buf_.size(), file_);
      buf_pos_ = 0;
      if (buf_len_ < buf_.size()) {
        if (std::ferror(file_))
          throw InputError(fmt::format("{}: read failed: {}", inputs_[file_idx_], std::strerror(errno)));
        file_eof_ = true;
      }
      if (buf_len_ == 0) break;
    }
    const char* start = buf_.data() + buf_pos_;
    const void* nl = std::memchr(start, '\n', buf_len_ - buf_pos_);
    const size_t take = nl ? size_t(static_cast<const char*>(nl) - start) + 1 : buf_len_ - buf_pos_;
    line.append(start, take);
    buf_pos_ += take;
    file_pos_ += int64_t(take);
    if (nl) break;
  }
  if (line.empty()) return false;
  ++line_no_;
  return true;
}

bool DocumentReader::take_piece(DocPiece& piece, bool final) {
  if (!final) {
    piece.doc = doc_started_ ? next_doc_ - 1 : next_doc_++;
    doc_started_ = true;
    piece.text = std::move(pending_);
    piece.doc_end = false;
    pending_.clear();
    return true;
  }
  const bool keep = doc_started_ || pending_nonblank_;
  if (keep) {
    piece.doc = doc_started_ ? next_doc_ - 1 : next_doc_++;
    piece.text = std::move(pending_);
    if (opts_.format == DocFormat::Text && opts_.split != TextSplit::File) strip_newline(piece.text);
    piece.doc_end = true;
  }
  pending_.clear();
  pending_lines_ = 0;
  pending_nonblank_ = doc_started_ = false;
  return keep;
}

bool DocumentReader::next(DocPiece& piece) {
  return opts_.format == DocFormat::Text ? next_text(piece) : next_jsonl(piece);
}

bool DocumentReader::next_text(DocPiece& piece) {
  std::string line;
  for (;;) {
    if (!file_ || !read_line(line)) {
      // End of a file ends its document in every mode.
      if (file_ && take_piece(piece, true)) return true;
      if (!open_next_file()) return false;
      continue;
    }
    const bool blank = !has_non_space(line);
    if (opts_.split == TextSplit::BlankLines && blank) {
      if (take_piece(piece, true)) return true;
      continue;
    }
    bool emitted = false;
    if (int64_t(pending_.size()) >= opts_.chunk_bytes && pending_.back() == '\n' && safe_start(line[0]))
      emitted = take_piece(piece, false);
    pending_ += line;
    pending_nonblank_ |= !blank;
    ++pending_lines_;
    if (emitted) return true;
    if (opts_.split == TextSplit::Lines && pending_lines_ >= opts_.doc_lines && take_piece(piece, true)) return true;
  }
}

bool DocumentReader::next_jsonl(DocPiece& piece) {
  // A long "text" value stays in pending_ and is handed out piece by piece.
  if (!pending_.empty()) {
    size_t cut = std::string::npos;
    for (size_t q = pending_.find('\n', size_t(opts_.chunk_bytes) - 1); q != std::string::npos && q + 1 < pending_.size();
         q = pending_.find('\n', q + 1))
      if (safe_start(pending_[q + 1])) {
        cut = q + 1;
        break;
      }
    if (cut == std::string::npos) return take_piece(piece, true);
    std::string rest = pending_.substr(cut);
    pending_.resize(cut);
    take_piece(piece, false);
    pending_ = std::move(rest);
    return true;
  }
  std::string line;
  for (;;) {
    if (!file_ || !read_line(line)) {
      if (!open_next_file()) return false;
      continue;
    }
    if (!has_non_space(line)) continue;
    const std::string where = fmt::format("{}:{}", inputs_[file_idx_], line_no_);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}: not valid JSON: {}", where, e.what()));
    }
    if (!j.is_object() || !j.contains(opts_.jsonl_field))
      throw InputError(fmt::format("{}: expected a JSON object with a \"{}\" field", where, opts_.jsonl_field));
    const nlohmann::json& t = j[opts_.jsonl_field];
    if (!t.is_string()) throw InputError(fmt::format("{}: \"{}\" must be a string, got {}", where, opts_.jsonl_field, t.type_name()));
    const std::string& text = t.get_ref<const std::string&>();
    if (!has_non_space(text)) continue;
    pending_ = text;
    pending_nonblank_ = true;
    return next_jsonl(piece);
  }
}

}  // namespace holdfast::train
