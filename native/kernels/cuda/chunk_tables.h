// Host side of multi-tensor apply: packs a list of element ranges into as few ChunkTables as the
// fixed table allows (kMaxTensors ranges, kMaxBlocksPerTable blocks each) and hands each one to
// a launch. Plain C++, shared by the CUDA launchers and the host emulation test.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "multi_tensor.h"

namespace model_ema {
namespace multi_tensor {

// count elements read at src and written at dst (dst is null for reductions): the elements
// [first, first + count) of arena tensor `tensor` (0 where nothing depends on it).
struct Span {
  void* dst;
  const void* src;
  size_t count;
  size_t tensor = 0;
  size_t first = 0;
};

// Calls launch(table, blocks) for each table; dst_size and src_size are the element sizes.
// A span split between two tables is split at a chunk boundary, which keeps its alignment.
// max_blocks is lowered only by the emulation test, to exercise those splits.
template <typename Launch>
void ForEachChunkTable(const std::vector<Span>& spans, size_t dst_size, size_t src_size, const Launch& launch,
                       int32_t max_blocks = kMaxBlocksPerTable) {
  ChunkTable table{};
  int32_t blocks = 0;
  auto flush = [&] {
    if (table.tensors == 0) return;
    table.first_block[table.tensors] = blocks;
    launch(table, blocks);
    table.tensors = 0;
    blocks = 0;
  };
  constexpr size_t kChunk = static_cast<size_t>(kChunkElements);
  for (const Span& span : spans) {
    size_t done = 0;
    while (done < span.count) {
      if (table.tensors == kMaxTensors || blocks >= max_blocks) flush();
      size_t left = span.count - done;
      size_t chunks = std::min((left + kChunk - 1) / kChunk, static_cast<size_t>(max_blocks - blocks));
      size_t take = std::min(left, chunks * kChunk);
      int t = table.tensors++;
      table.dst[t] = span.dst == nullptr ? nullptr : static_cast<uint8_t*>(span.dst) + done * dst_size;
      table.src[t] = static_cast<const uint8_t*>(span.src) + done * src_size;
      table.count[t] = static_cast<int64_t>(take);
      table.first[t] = static_cast<int64_t>(span.first + done);
      table.tensor[t] = static_cast<int32_t>(span.tensor);
      table.first_block[t] = blocks;
      blocks += static_cast<int32_t>(chunks);
      done += take;
    }
  }
  flush();
}

}  // namespace multi_tensor
}  // namespace model_ema
