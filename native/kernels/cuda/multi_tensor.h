// Multi-tensor apply, after PyTorch's MultiTensorApply.cuh and apex's multi_tensor_apply.cuh: one
// kernel launch covers many tensors. The launch's whole work list (a ChunkTable) travels by value
// as the kernel argument, so there is no device-side table to allocate, upload or free, and the
// host may refill its table as soon as the launch is queued.
//
// Each block handles one chunk of kChunkElements elements of one tensor; its threads stride over
// the chunk in 16-byte vectors when both pointers allow, then finish the tail element by element.
// The per-element math is the functors of element_ops.h, exactly as the CPU loops use them.
//
// Plain C++ as well as CUDA: the block functions take the block and thread indices as arguments,
// so host_emulation_test.cc can run every block of a table on the CPU and check the indexing,
// vectorising and tail logic against the CPU kernels without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../element_ops.h"
#include "../host_device.h"

namespace model_ema {
namespace multi_tensor {

constexpr int kBlockThreads = 256;
// A multiple of kBlockThreads times the widest vector (8 elements), so that every chunk but a
// tensor's last is covered by whole vectors and chunk starts keep the tensor's alignment.
constexpr int64_t kChunkElements = 8192;
// Ranges per launch: as many as fit the 4 KiB kernel argument space (see ChunkTable).
constexpr int kMaxTensors = 88;
constexpr int32_t kMaxBlocksPerTable = 1 << 20;

struct ChunkTable {
  void* dst[kMaxTensors];        // null for reductions
  const void* src[kMaxTensors];
  int64_t count[kMaxTensors];    // elements
  // Where each range sits in the arena: its tensor and the index of its first element there
  // (what stochastic rounding's random bits depend on).
  int64_t first[kMaxTensors];
  int32_t tensor[kMaxTensors];
  // The block-to-(tensor, chunk) map: block b works on range t where
  // first_block[t] <= b < first_block[t + 1], on its chunk b - first_block[t].
  int32_t first_block[kMaxTensors + 1];
  int32_t tensors;
};
// Kernel arguments were limited to 4 KiB before CUDA 12.1; stay below that with room to spare.
static_assert(sizeof(ChunkTable) <= 3700, "ChunkTable must fit in the kernel argument space");

struct BlockWork {
  int tensor;
  int64_t first;  // element offset of the chunk in the tensor
  int64_t count;  // elements in the chunk
};

MODEL_EMA_HD_INLINE BlockWork WorkOfBlock(const ChunkTable& table, int32_t block) {
  int lo = 0, hi = table.tensors - 1;  // the last tensor whose first block is <= block
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (table.first_block[mid] <= block) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  int64_t first = static_cast<int64_t>(block - table.first_block[lo]) * kChunkElements;
  int64_t count = table.count[lo] - first;
  return {lo, first, count < kChunkElements ? count : kChunkElements};
}

// E elements loaded or stored as one aligned access (16 bytes for the narrower of two types,
// several 16-byte accesses for the wider one).
template <typename T, int E>
struct alignas(sizeof(T) * E) Pack {
  T v[E];
};

// A constant, not a function: device code may not call a host constexpr function.
template <typename A, typename B>
constexpr int kPackElements = static_cast<int>(16 / (sizeof(A) < sizeof(B) ? sizeof(A) : sizeof(B)));

template <typename T, int E>
MODEL_EMA_HD_INLINE bool PackAligned(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % sizeof(Pack<T, E>) == 0;
}

// This thread's share of dst[i] = f(dst[i], src[i], bits) over n elements whose first is element
// `index` of its tensor, for any functor of element_ops.h already bound to that tensor (ForTensor).
// dst[i] is not loaded when the functor does not read it. Returns how many elements it skipped.
template <typename F>
MODEL_EMA_HD_INLINE uint32_t TransformChunk(typename F::Dst* dst, const typename F::Src* src, int64_t n, int thread,
                                            int threads, const F& f, int64_t index) {
  using D = typename F::Dst;
  using S = typename F::Src;
  constexpr int E = kPackElements<D, S>;
  uint32_t skipped = 0;
  auto bits = [&](int64_t i) -> uint32_t {
    if constexpr (F::kStochastic) {
      return f.stream.At(static_cast<uint64_t>(index + i));
    } else {
      (void)i;
      return 0u;
    }
  };
  int64_t vector_end = 0;
  if (PackAligned<D, E>(dst) && PackAligned<S, E>(src)) {
    vector_end = n / E * E;
    Pack<D, E>* dst_packs = reinterpret_cast<Pack<D, E>*>(dst);
    const Pack<S, E>* src_packs = reinterpret_cast<const Pack<S, E>*>(src);
    for (int64_t i = thread; i < n / E; i += threads) {
      const Pack<S, E> s = src_packs[i];
      Pack<D, E> d{};
      if constexpr (F::kReadsDst) d = dst_packs[i];
      for (int k = 0; k < E; ++k) {
        skipped += Skips(f, s.v[k]) ? 1u : 0u;
        d.v[k] = f(d.v[k], s.v[k], bits(i * E + k));
      }
      dst_packs[i] = d;
    }
  }
  for (int64_t i = vector_end + thread; i < n; i += threads) {
    skipped += Skips(f, src[i]) ? 1u : 0u;
    if constexpr (F::kReadsDst) {
      dst[i] = f(dst[i], src[i], bits(i));
    } else {
      dst[i] = f(D{}, src[i], bits(i));
    }
  }
  return skipped;
}

// One block's chunk of dst = f(dst, src): the update, and every conversion (parameters into an
// arena, an arena into parameters, arena to arena), in one kernel shape. Returns this thread's
// count of skipped elements.
template <typename F>
MODEL_EMA_HD_INLINE uint32_t TransformBlock(const ChunkTable& table, int32_t block, int thread, int threads, const F& f) {
  const BlockWork w = WorkOfBlock(table, block);
  const F op = ForTensor(f, static_cast<uint64_t>(table.tensor[w.tensor]));
  return TransformChunk(static_cast<typename F::Dst*>(table.dst[w.tensor]) + w.first,
                        static_cast<const typename F::Src*>(table.src[w.tensor]) + w.first, w.count, thread, threads, op,
                        table.first[w.tensor] + w.first);
}

// How many of this thread's elements of the block's chunk are NaN or infinite.
template <typename S>
MODEL_EMA_HD_INLINE uint32_t CountNonFiniteBlock(const ChunkTable& table, int32_t block, int thread,
                                                 int threads) {
  const BlockWork w = WorkOfBlock(table, block);
  const S* src = static_cast<const S*>(table.src[w.tensor]) + w.first;
  const IsFiniteElement<S> finite{};
  constexpr int E = kPackElements<S, S>;
  uint32_t count = 0;
  int64_t vector_end = 0;
  if (PackAligned<S, E>(src)) {
    vector_end = w.count / E * E;
    const Pack<S, E>* packs = reinterpret_cast<const Pack<S, E>*>(src);
    for (int64_t i = thread; i < w.count / E; i += threads) {
      const Pack<S, E> s = packs[i];
      for (int k = 0; k < E; ++k) count += finite(s.v[k]) ? 0u : 1u;
    }
  }
  for (int64_t i = vector_end + thread; i < w.count; i += threads) count += finite(src[i]) ? 0u : 1u;
  return count;
}

}  // namespace multi_tensor
}  // namespace model_ema
