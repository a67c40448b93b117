// Incremental stop-string matching over streamed text. Text that could still be the start of a stop
// string is held back, so a stop string split across tokens never leaks into the output.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace holdfast::serve {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends text; returns the part that is now safe to emit. After a stop string is found, returns the
  // text before it and stopped() becomes true; later pushes return nothing.
  std::string push(std::string_view text);
  // End of generation: releases whatever is held back (nothing once stopped).
  std::string flush();
  bool stopped() const { return stopped_; }
  // Bytes currently held back.
  size_t held() const { return pending_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace holdfast::serve
