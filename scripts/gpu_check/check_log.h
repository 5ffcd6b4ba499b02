// How gpu_check reports: one line per check ("ok" or "FAIL", a name, a detail), counted for the
// summary. A check groups many comparisons (every operation of one shape and dtype), so that the
// whole run fits a screen and the device tool's 12,000-character output tail.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace model_ema {

class CheckLog {
 public:
  // `failures` empty: the check passed. Otherwise the first few are printed and all are counted.
  void Report(const std::string& name, const std::vector<std::string>& failures, const std::string& detail = "") {
    ++checks_;
    if (failures.empty()) {
      std::printf("ok    %s%s%s\n", name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
    } else {
      ++failed_;
      std::printf("FAIL  %s: %zu failure%s\n", name.c_str(), failures.size(), failures.size() == 1 ? "" : "s");
      for (size_t i = 0; i < failures.size() && i < 5; ++i) std::printf("        %s\n", failures[i].c_str());
    }
    std::fflush(stdout);  // a run cut short by a time limit still shows how far it got
  }
  void Pass(const std::string& name, const std::string& detail = "") { Report(name, {}, detail); }
  void Fail(const std::string& name, const std::string& why) { Report(name, {why}); }

  int checks() const { return checks_; }
  int failed() const { return failed_; }

 private:
  int checks_ = 0;
  int failed_ = 0;
};

}  // namespace model_ema
