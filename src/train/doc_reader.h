// Streams documents out of input files for `data prepare`, in bounded memory: text files (one document
// per file, per blank-line paragraph or per N lines) or JSON lines ({"text": ...} per line). A long
// document comes out in pieces of about chunk_bytes, cut just after a '\n' that is followed by an ASCII
// non-space character: byte-level BPE pre-tokenizers of the GPT-2 / DeepSeek family never join such a
// newline with the next character, so encoding the pieces one by one gives the ids of the whole.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace holdfast::train {

enum class DocFormat { Text, Jsonl };
enum class TextSplit { File, BlankLines, Lines };

struct DocReaderOptions {
  DocFormat format = DocFormat::Text;
  TextSplit split = TextSplit::File;
  int64_t doc_lines = 0;              // TextSplit::Lines: lines per document
  std::string jsonl_field = "text";   // Jsonl: the string field holding the document
  int64_t chunk_bytes = int64_t(1) << 20;
};

struct DocPiece {
  int64_t doc = 0;       // 0-based index of the document among all non-empty documents
  std::string text;      // part of the document's text
  bool doc_end = false;  // the last piece of its document (an EOS follows it)
};

class DocumentReader {
 public:
  // Throws InputError naming the file when an input cannot be opened.
  DocumentReader(std::vector<std::string> inputs, DocReaderOptions opts);
  ~DocumentReader();
  DocumentReader(const DocumentReader&) = delete;
  DocumentReader& operator=(const DocumentReader&) = delete;

  // Next piece, false at the end of the last input. Empty (all-whitespace) documents are skipped.
  // Throws InputError naming file:line for a malformed JSON line.
  bool next(DocPiece& piece);
  int64_t bytes_read() const { return bytes_done_ + file_pos_; }  // input bytes consumed so far
  int64_t bytes_total() const { return bytes_total_; }
  int64_t n_documents() const { return next_doc_; }

 private:
  bool read_line(std::string& line);  // one line of the current file without its '\n'; false at EOF
  bool open_next_file();
  bool next_text(DocPiece& piece);
  bool next_jsonl(DocPiece& piece);
  // Moves a piece of at most ~chunk_bytes out of pending_ when one can be cut; `final` flushes it all.
  bool take_piece(DocPiece& piece, bool final);

  std::vector<std::string> inputs_;
  DocReaderOptions opts_;
  size_t file_idx_ = 0;
  std::FILE* file_ = nullptr;
  std::vector<char> buf_;
  size_t buf_pos_ = 0, buf_len_ = 0;
  int64_t line_no_ = 0, file_pos_ = 0, bytes_done_ = 0, bytes_total_ = 0;
  bool file_eof_ = false;
  // The document being assembled: text not yet handed out, lines in it, whether any piece left.
  std::string pending_;
  int64_t pending_lines_ = 0;
  bool pending_nonblank_ = false, doc_started_ = false;
  int64_t next_doc_ = 0;
};

}  // namespace holdfast::train
