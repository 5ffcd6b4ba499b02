// x86 vector lanes for the hand-written loops of cpu_vector_loops.h: 8 floats of 256 bits, with
// AVX2 + F16C (Lanes256) or with AVX-512VL's mask registers too (Lanes256Masks), and 16 floats of
// 512 bits (Lanes512); the same members, so that each loop is written once. Included only by cpu_kernels_<isa>.cc, after its `#pragma GCC target`, inside
// that ISA's namespace (no copy compiled for one target can serve another).
//
// Every conversion here gives exactly the bits of the scalar functions of float_bits.h. The fast
// instruction differs from them on a few inputs (vcvtneps2bf16 flushes subnormals; vcvtps2ph
// keeps NaN payloads, vcvtph2ps quiets signalling NaNs); a cheap mask finds vectors holding such
// a lane, and those vectors, rare in real data, are redone lane by lane with the scalar function.
#ifndef MODEL_EMA_ISA_LEVEL
#error "define MODEL_EMA_ISA_LEVEL before including cpu_simd_x86.h"
#endif

// Inside namespace model_ema::MODEL_EMA_ISA: cpu_loops.inl has included <immintrin.h> before.

// dst lanes redone with the scalar reference: fn(value, random bits) -> 16 bits.
template <size_t kWidth, typename Fn>
inline void RedoLanes(uint16_t* out, const float* values, const uint32_t* random, Fn fn) {
  for (size_t k = 0; k < kWidth; ++k) out[k] = fn(values[k], random[k]);
}

struct Lanes256 {
  static constexpr size_t kWidth = 8;
  using F = __m256;
  using I = __m256i;
  using H = __m128i;  // 8 lanes of 16 bits
  using M = __m256;   // all ones in a lane = true

  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static H Load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
  static void Store16(void* p, H h) { _mm_storeu_si128(static_cast<__m128i*>(p), h); }
  static F Set(float x) { return _mm256_set1_ps(x); }
  static I Set(uint32_t x) { return _mm256_set1_epi32(static_cast<int>(x)); }
  static I Iota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static F Sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static I Add(I a, I b) { return _mm256_add_epi32(a, b); }
  static I And(I a, I b) { return _mm256_and_si256(a, b); }
  static I Xor(I a, I b) { return _mm256_xor_si256(a, b); }
  static I MulLo(I a, I b) { return _mm256_mullo_epi32(a, b); }
  template <int kBits> static I ShiftRight(I a) { return _mm256_srli_epi32(a, kBits); }
  template <int kBits> static I ShiftLeft(I a) { return _mm256_slli_epi32(a, kBits); }
  static I Bits(F v) { return _mm256_castps_si256(v); }
  static F FromBits(I v) { return _mm256_castsi256_ps(v); }

  // NaN or infinite: the exponent bits all ones (IsFiniteValue's test).
  static M NonFinite(F v) {
    const I exponent = Set(0x7F800000u);
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(And(Bits(v), exponent), exponent));
  }
  static M IsNaN(F v) { return _mm256_cmp_ps(v, v, _CMP_UNORD_Q); }
  // |v| > 65504, infinite or NaN: what float16 saturation may change.
  static M BeyondHalfMax(F v) {
    return _mm256_cmp_ps(FromBits(And(Bits(v), Set(0x7FFFFFFFu))), Set(65504.0f), _CMP_NLE_UQ);
  }
  static M Denormal(F v) {  // exponent bits zero, mantissa not
    const I magnitude = And(Bits(v), Set(0x7FFFFFFFu));
    const I below = _mm256_cmpgt_epi32(Set(0x00800000u), magnitude);  // magnitude < 2^-126 (signed ok: >= 0)
    return _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_cmpeq_epi32(magnitude, _mm256_setzero_si256()), below));
  }
  static M Or(M a, M b) { return _mm256_or_ps(a, b); }
  static bool Any(M m) { return _mm256_movemask_ps(m) != 0; }
  static unsigned Count(M m) { return static_cast<unsigned>(__builtin_popcount(_mm256_movemask_ps(m))); }
  static F Select(M m, F yes, F no) { return _mm256_blendv_ps(no, yes, m); }
  static H Select16(M m, H yes, H no) {
    const __m256i wide = _mm256_castps_si256(m);
    const __m128i m16 = _mm_packs_epi32(_mm256_castsi256_si128(wide), _mm256_extracti128_si256(wide, 1));
    return _mm_blendv_epi8(no, yes, m16);
  }
  // Lanes holding values below 2^16, to 16 bits each.
  static H Narrow(I v) { return _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)); }
  static I Widen(H h) { return _mm256_cvtepu16_epi32(h); }
  static H HalfFast(F v) { return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT); }
  static F HalfToFloatFast(H h) { return _mm256_cvtph_ps(h); }
  // For float16 stochastic rounding (Convert16::ToHalfStochastic).
  static M Less(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static I SelectBits(M m, I yes, I no) { return _mm256_blendv_epi8(no, yes, _mm256_castps_si256(m)); }
  static I OrBits(I a, I b) { return _mm256_or_si256(a, b); }
  static I SubBits(I a, I b) { return _mm256_sub_epi32(a, b); }
  static F ToFloat(I v) { return _mm256_cvtepi32_ps(v); }
};

#if MODEL_EMA_ISA_LEVEL >= 2
// The same 256-bit lanes with AVX-512VL's mask registers and vfpclassps (categories: QNaN 0x01,
// +Inf 0x08, -Inf 0x10, denormal 0x20, SNaN 0x80). Not 512-bit vectors: on the double-pumped
// AVX-512 of Zen 4 they gain nothing in these memory-bound loops, and lose a third in the guard's
// loops when the parameters are not 64-byte aligned (typed arrays usually sit 16 bytes past a
// line), as every load then splits a cache line.
struct Lanes256Masks : Lanes256 {
  using M = __mmask8;
  static M NonFinite(F v) { return _mm256_fpclass_ps_mask(v, 0x99); }
  static M IsNaN(F v) { return _mm256_fpclass_ps_mask(v, 0x81); }
  static M BeyondHalfMax(F v) {
    return _mm256_cmp_ps_mask(FromBits(And(Bits(v), Set(0x7FFFFFFFu))), Set(65504.0f), _CMP_NLE_UQ);
  }
  static M Denormal(F v) { return _mm256_fpclass_ps_mask(v, 0x20); }
  static M Or(M a, M b) { return static_cast<M>(a | b); }
  static bool Any(M m) { return m != 0; }
  static unsigned Count(M m) { return static_cast<unsigned>(__builtin_popcount(m)); }
  static F Select(M m, F yes, F no) { return _mm256_mask_blend_ps(m, no, yes); }
  static H Select16(M m, H yes, H no) { return _mm_mask_blend_epi16(m, no, yes); }
  static H Narrow(I v) { return _mm256_cvtepi32_epi16(v); }
};

// 16 floats of 512 bits, for the 16-bit shadows' updates: their conversions (and stochastic
// rounding's random bits, two 32-bit multiplies per element) make them bound by instructions as
// much as by memory, and one instruction per 16 elements beats two per 8 even on Zen 4 (measured:
// bfloat16 updates 10% faster than on 256-bit lanes, two threads, resnet50-like).
struct Lanes512 {
  static constexpr size_t kWidth = 16;
  using F = __m512;
  using I = __m512i;
  using H = __m256i;  // 16 lanes of 16 bits
  using M = __mmask16;

  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static H Load16(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static void Store16(void* p, H h) { _mm256_storeu_si256(static_cast<__m256i*>(p), h); }
  static F Set(float x) { return _mm512_set1_ps(x); }
  static I Set(uint32_t x) { return _mm512_set1_epi32(static_cast<int>(x)); }
  static I Iota() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static F Sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static I Add(I a, I b) { return _mm512_add_epi32(a, b); }
  static I And(I a, I b) { return _mm512_and_si512(a, b); }
  static I Xor(I a, I b) { return _mm512_xor_si512(a, b); }
  static I MulLo(I a, I b) { return _mm512_mullo_epi32(a, b); }
  template <int kBits> static I ShiftRight(I a) { return _mm512_srli_epi32(a, kBits); }
  template <int kBits> static I ShiftLeft(I a) { return _mm512_slli_epi32(a, kBits); }
  static I Bits(F v) { return _mm512_castps_si512(v); }
  static F FromBits(I v) { return _mm512_castsi512_ps(v); }

  static M NonFinite(F v) { return _mm512_fpclass_ps_mask(v, 0x99); }
  static M IsNaN(F v) { return _mm512_fpclass_ps_mask(v, 0x81); }
  static M Denormal(F v) { return _mm512_fpclass_ps_mask(v, 0x20); }
  static M BeyondHalfMax(F v) { return _mm512_cmp_ps_mask(_mm512_abs_ps(v), Set(65504.0f), _CMP_NLE_UQ); }
  static bool Any(M m) { return m != 0; }
  static unsigned Count(M m) { return static_cast<unsigned>(__builtin_popcount(m)); }
  static H Select16(M m, H yes, H no) { return _mm256_mask_blend_epi16(m, no, yes); }
  static H Narrow(I v) { return _mm512_cvtepi32_epi16(v); }
  static I Widen(H h) { return _mm512_cvtepu16_epi32(h); }
  static H HalfFast(F v) { return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT); }
  static F HalfToFloatFast(H h) { return _mm512_cvtph_ps(h); }
  static M Less(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static I SelectBits(M m, I yes, I no) { return _mm512_mask_blend_epi32(m, no, yes); }
  static I OrBits(I a, I b) { return _mm512_or_si512(a, b); }
  static I SubBits(I a, I b) { return _mm512_sub_epi32(a, b); }
  static F ToFloat(I v) { return _mm512_cvtepi32_ps(v); }
};
#endif

// The exact conversions, for either lane set L.
template <typename L>
struct Convert16 {
  using F = typename L::F;
  using I = typename L::I;
  using H = typename L::H;

  template <typename Fn>
  static H Redo(F v, typename L::I random, Fn fn) {
    alignas(64) float values[L::kWidth];
    alignas(64) uint32_t bits[L::kWidth];
    alignas(64) uint16_t out[L::kWidth];
    L::Store(values, v);
    L::Store(reinterpret_cast<float*>(bits), L::FromBits(random));
    RedoLanes<L::kWidth>(out, values, bits, fn);
    return L::Load16(out);
  }

  static F FromBFloat16(H h) { return L::FromBits(L::template ShiftLeft<16>(L::Widen(h))); }

  static F FromHalf(H h) {
    const F v = L::HalfToFloatFast(h);
    if (!L::Any(L::IsNaN(v))) return v;  // NaNs: vcvtph2ps quiets signalling ones
    alignas(64) uint16_t in[L::kWidth];
    alignas(64) float out[L::kWidth];
    L::Store16(in, h);
    for (size_t k = 0; k < L::kWidth; ++k) out[k] = HalfBitsToFloat(in[k]);
    return L::Load(out);
  }

  // FloatToBFloat16Bits: with AVX512_BF16 one instruction, which flushes subnormal inputs to
  // zero (NaNs come out as the reference's: the top half with the quiet bit set); otherwise the
  // integer rounding, whose NaN lanes (it would round a NaN's payload) are redone.
  static H ToBFloat16(F v) {
#if MODEL_EMA_ISA_LEVEL >= 3
    H fast;
    if constexpr (L::kWidth == 16) {
      fast = (H)_mm512_cvtneps_pbh(v);
    } else {
      fast = (H)_mm256_cvtneps_pbh(v);
    }
    const auto redo = L::Denormal(v);
#else
    const I u = L::Bits(v);
    const I rounding = L::Add(L::And(L::template ShiftRight<16>(u), L::Set(1u)), L::Set(0x7FFFu));
    const H fast = L::Narrow(L::template ShiftRight<16>(L::Add(u, rounding)));
    const auto redo = L::IsNaN(v);
#endif
    if (!L::Any(redo)) return fast;
    return Redo(v, L::Set(0u), [](float x, uint32_t) { return FloatToBFloat16Bits(x); });
  }

  // FloatToBFloat16BitsStochastic: add 16 random bits below the kept half and truncate.
  static H ToBFloat16Stochastic(F v, I random) {
    const I u = L::Bits(v);
    const H fast = L::Narrow(L::template ShiftRight<16>(L::Add(u, L::And(random, L::Set(0xFFFFu)))));
    if (!L::Any(L::IsNaN(v))) return fast;
    return Redo(v, random, [](float x, uint32_t r) { return FloatToBFloat16BitsStochastic(x, r); });
  }

  // FloatToHalfBits (no saturation: a conversion). vcvtps2ph rounds to nearest even, overflows
  // to infinity and makes subnormals as the reference does; NaNs keep their payload there, where
  // the reference gives the one quiet NaN 0x7E00 with the sign.
  static H ToHalf(F v) {
    const H fast = L::HalfFast(v);
    if (!L::Any(L::IsNaN(v))) return fast;
    return Redo(v, L::Set(0u), [](float x, uint32_t) { return FloatToHalfBits(x); });
  }

  // A shadow update's stochastic float16 store: Saturation<Half>, then FloatToHalfBitsStochastic,
  // its steps in lanes (F16C gives the neighbours lo and lo + 1 exactly). Vectors with a value
  // beyond 65504, infinite or NaN (saturation, or nearest's NaN) are redone lane by lane.
  static H ToHalfStochasticSaturated(F v, I random) {
    if (L::Any(L::BeyondHalfMax(v))) {
      return Redo(v, random, [](float x, uint32_t r) { return FloatToHalfBitsStochastic(Saturation<Half>::Apply(x), r); });
    }
    const I nearest = L::Widen(L::HalfFast(v));
    const I sign = L::And(nearest, L::Set(0x8000u));
    const I mag = L::And(nearest, L::Set(0x7FFFu));
    const F a = L::FromBits(L::And(L::Bits(v), L::Set(0x7FFFFFFFu)));
    const auto above = L::Less(a, L::HalfToFloatFast(L::Narrow(mag)));  // nearest rounded up
    const I lo = L::SelectBits(above, L::SubBits(mag, L::Set(1u)), mag);
    const I hi = L::Add(lo, L::Set(1u));
    const F low = L::HalfToFloatFast(L::Narrow(lo));
    const F gap = L::Sub(L::HalfToFloatFast(L::Narrow(hi)), low);
    const F u = L::Mul(L::ToFloat(L::template ShiftRight<8>(random)), L::Set(5.9604644775390625e-8f));
    const auto up = L::Less(L::Mul(u, gap), L::Sub(a, low));
    return L::Narrow(L::OrBits(sign, L::SelectBits(up, hi, lo)));
  }

  // A shadow update's float16 store: saturated at +-65504 (Saturation<Half>), then FloatToHalfBits.
  static H ToHalfSaturated(F v) {
    const H fast = L::HalfFast(v);
    if (!L::Any(L::BeyondHalfMax(v))) return fast;
    return Redo(v, L::Set(0u), [](float x, uint32_t) { return FloatToHalfBits(Saturation<Half>::Apply(x)); });
  }
};
