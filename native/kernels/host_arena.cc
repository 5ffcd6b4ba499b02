#include "host_arena.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "pieces.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace model_ema {

namespace {

const uint8_t* At(const void* base, size_t element, size_t element_size) {
  return static_cast<const uint8_t*>(base) + element * element_size;
}
uint8_t* At(void* base, size_t element, size_t element_size) {
  return static_cast<uint8_t*>(base) + element * element_size;
}

}  // namespace

void HostArena::Free::operator()(void* p) const { std::free(p); }

HostArena::HostArena(DType dtype, std::vector<size_t> sizes) : Arena(ArenaLayout(dtype, std::move(sizes)), -1) {
  size_t bytes = layout().byte_length();
  if (bytes > 0) {
    // calloc rather than aligned_alloc + memset: large blocks come straight from mmap as zero pages,
    // so no page is touched here (first touches are expensive; CopyFromParams pays for them once).
    // Page-aligned base, so that the layout's offsets within a page are the addresses' offsets.
    const size_t page = ArenaLayout::kPageBytes;
    void* p = std::calloc(bytes + page, 1);
    if (p == nullptr) throw std::bad_alloc();
    allocation_.reset(p);
    uintptr_t address = reinterpret_cast<uintptr_t>(p);
    data_ = reinterpret_cast<uint8_t*>((address + page - 1) / page * page);
  }
}

size_t HostArena::UpdateShadows(const CpuContext& cpu, const ParamList& params, UpdateDescription u) {
  const DType sd = dtype();
  const size_t s_size = DTypeSize(sd);
  std::atomic<size_t> skipped{0};
  ForEachPiece(cpu, layout(), [&](size_t t, size_t first, size_t count) {
    const ParamBuffer& p = params[t];
    size_t n = cpu.kernels->update(u, sd, p.type, At(tensor(t), first, s_size), At(p.data, first, ParamTypeSize(p.type)),
                                   count, t, first);
    if (n != 0) skipped.fetch_add(n, std::memory_order_relaxed);
  });
  return skipped.load();
}

namespace {

// Faults in the whole pages of [p, p + n) with one system call before they are written. A load
// streams a checkpoint into a new arena's fresh pages, and the kernel populates them about twice
// as fast as the page faults of a plain copy do (on the CI VM: 390 against 210 MB/s, where the
// copy is the slowest part of a load). Best effort: where the call is unknown (kernels before
// 5.14, other systems) or fails, the copy faults the pages in as before.
void PopulateForWrite(void* p, size_t n) {
#if defined(__linux__)
  constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE, which older headers lack
  constexpr size_t kWorthIt = size_t{1} << 20;
  if (n < kWorthIt) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);  // only pages inside the range
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, kPopulateWrite);
#else
  (void)p;
  (void)n;
#endif
}

}  // namespace


// Each piece goes block by block, and every arena takes its turn at a block while that block of
// the parameters is still in cache: the parameters come from memory once for all arenas (4 + 8T
// bytes per float32 element for T float32 arenas, not 12T). Blocks start at multiples of kBlock
// within a piece, so the elements (and the stochastic rounding's positions) are those of Update.
void HostArena::UpdateShadowsTogether(const CpuContext& cpu, const ParamList& params, const std::vector<Arena*>& arenas,
                                      const std::vector<UpdateDescription>& us, std::vector<size_t>& skipped) {
  // 128 KiB of float32 parameters: stays in L2 while every arena reads it (measured on resnet50-like,
  // 3 float32 tracks: 4096 gave 0.93-1.07 of three update() calls, 16384 0.91, 32768 0.90).
  constexpr size_t kBlock = 32768;
  const DType sd = dtype();
  const size_t s_size = DTypeSize(sd);
  std::vector<HostArena*> hosts;
  for (Arena* a : arenas) hosts.push_back(static_cast<HostArena*>(a));  // same device as this: host
  std::vector<std::atomic<size_t>> counts(arenas.size());
  ForEachPiece(cpu, layout(), [&](size_t t, size_t first, size_t count) {
    const ParamBuffer& p = params[t];
    const size_t p_size = ParamTypeSize(p.type);
    for (size_t begin = first; begin < first + count; begin += kBlock) {
      const size_t n = std::min(kBlock, first + count - begin);
      for (size_t k = 0; k < hosts.size(); ++k) {
        size_t left_out = cpu.kernels->update(us[k], sd, p.type, At(hosts[k]->tensor(t), begin, s_size),
                                              At(p.data, begin, p_size), n, t, begin);
        if (left_out != 0) counts[k].fetch_add(left_out, std::memory_order_relaxed);
      }
    }
  });
  for (size_t k = 0; k < hosts.size(); ++k) skipped[k] += counts[k].load();
}

void HostArena::CopyFromParams(const CpuContext& cpu, const ParamList& params) {
  const size_t s_size = DTypeSize(dtype());
  ForEachPiece(cpu, layout(), [&](size_t t, size_t first, size_t count) {
    const ParamBuffer& p = params[t];
    cpu.kernels->convert(AsDType(p.type), dtype(), At(p.data, first, ParamTypeSize(p.type)),
                         At(tensor(t), first, s_size), count);
  });
}

void HostArena::CopyToParams(const CpuContext& cpu, const ParamList& params) const {
  const size_t s_size = DTypeSize(dtype());
  ForEachPiece(cpu, layout(), [&](size_t t, size_t first, size_t count) {
    const ParamBuffer& p = params[t];
    cpu.kernels->convert(dtype(), AsDType(p.type), At(tensor(t), first, s_size),
                         At(p.data, first, ParamTypeSize(p.type)), count);
  });
}

void HostArena::CopyFrom(const CpuContext& cpu, const Arena& source) {
  CheckCopySource(source);
  if (source.dtype() == dtype()) {
    // The whole block, padding included: exact, NaN payloads too (a conversion would quiet them).
    // save()'s copy at its call lands here, often in fresh (or long idle) pages: fault them in first.
    PopulateForWrite(data_, layout().byte_length());
    if (layout().byte_length() > 0) source.CopyBlockToHost(data_);
    return;
  }
  // Another dtype on this device, so a host block with the same layout but for the element size.
  const ArenaLayout& from = source.layout();
  const size_t f_size = DTypeSize(from.dtype()), t_size = DTypeSize(dtype());
  const uint8_t* from_block = static_cast<const uint8_t*>(source.block());
  ForEachPiece(cpu, from, [&](size_t t, size_t first, size_t count) {
    cpu.kernels->convert(from.dtype(), dtype(), At(from_block + from.byte_offset(t), first, f_size),
                         At(tensor(t), first, t_size), count);
  });
}

size_t HostArena::CountNonFinite(const CpuContext& cpu) const {
  const size_t s_size = DTypeSize(dtype());
  std::atomic<size_t> count{0};
  ForEachPiece(cpu, layout(), [&](size_t t, size_t first, size_t n) {
    count.fetch_add(cpu.kernels->count_non_finite(dtype(), At(tensor(t), first, s_size), n), std::memory_order_relaxed);
  });
  return count.load();
}

void HostArena::ReadTensor(const CpuContext& cpu, size_t t, ParamBuffer out) const {
  cpu.kernels->convert(dtype(), AsDType(out.type), tensor(t), out.data, layout().size(t));
}

void HostArena::ReadTensorRange(size_t t, size_t offset, size_t length, void* out) const {
  if (length > 0) std::memcpy(out, static_cast<const uint8_t*>(tensor(t)) + offset, length);
}

void HostArena::WriteTensorRange(size_t t, size_t offset, size_t length, const void* bytes) {
  if (length == 0) return;
  uint8_t* to = static_cast<uint8_t*>(tensor(t)) + offset;
  PopulateForWrite(to, length);
  std::memcpy(to, bytes, length);
}

void HostArena::CopyBlockToHost(void* out) const {
  if (layout().byte_length() > 0) std::memcpy(out, data_, layout().byte_length());
}

ParamList HostArena::AsParams() {
  if (dtype() != DType::kFloat32 && dtype() != DType::kFloat64) {
    throw std::logic_error("HostArena::AsParams needs a float32 or float64 arena");
  }
  const ParamType type = dtype() == DType::kFloat64 ? ParamType::kFloat64 : ParamType::kFloat32;
  ParamList params;
  params.reserve(layout().tensor_count());
  for (size_t t = 0; t < layout().tensor_count(); ++t) params.push_back({tensor(t), type});
  return params;
}

}  // namespace model_ema
