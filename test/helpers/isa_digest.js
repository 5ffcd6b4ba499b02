// Prints a digest of every kernel's output on a fixed workload, using the CPU kernels that
// MODEL_EMA_CPU_ISA allows and the threads MODEL_EMA_THREADS allows. test/kernels_isa.test.ts runs
// it once per instruction set and thread count: the bits must not depend on which one ran.
const crypto = require('node:crypto');
const path = require('node:path');
const binding = require('node-gyp-build')(path.join(__dirname, '..', '..'));

function values(n, seed, Ctor) {
  const out = new Ctor(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    // Wide exponent range, both signs, some subnormal-for-float16 values and exact zeros.
    out[i] = i % 97 === 0 ? 0 : ((x / 2 ** 32) - 0.5) * 2 ** ((x % 40) - 25);
  }
  return out;
}

const hash = crypto.createHash('sha256');
const sizes = [0, 1, 7, 4097, 70001, 33];
for (const dtype of ['float32', 'float64', 'float16', 'bfloat16']) {
  for (const Ctor of [Float32Array, Float64Array]) {
    const arena = new binding.ShadowArena(dtype, sizes);
    arena.copyFrom(sizes.map((n, i) => values(n, i + 1, Ctor)));
    arena.update(sizes.map((n, i) => values(n, i + 100, Ctor)), { decay: 0.9 });
    // The guard and stochastic rounding: parameters with NaN and infinities at every 13th element.
    const bad = sizes.map((n, i) => values(n, i + 200, Ctor).map((v, j) => (j % 13 === 5 ? [NaN, Infinity, -Infinity][j % 3] : v)));
    for (const nonFinite of ['skip-element', 'skip-update', 'propagate']) {
      for (const rounding of ['stochastic', 'nearest']) {
        const found = arena.update(bad, { decay: 0.75, nonFinite, rounding, seed: 12345, updateIndex: 7 });
        hash.update(`${nonFinite} ${rounding} ${found};`);
      }
    }
    const out = sizes.map((n) => new Ctor(n));
    arena.copyTo(out);
    for (const o of out) hash.update(Buffer.from(o.buffer));
    for (const target of ['float32', 'float64', 'float16', 'bfloat16']) {
      const cast = arena.cast(target);
      sizes.forEach((_, i) => hash.update(cast.readBytes(i)));
      cast.dispose();
    }
    hash.update(String(arena.countNonFinite()));
    arena.dispose();
  }
}
// The values where the vector instructions and the reference part ways (fixup_values.js), through
// updates (every rounding and policy, NaN parameters beside them) and conversions both ways.
const { finite, NAN_BITS, placed, fixupPosition, fixupLength } = require('./fixup_values.js');
for (const dtype of ['float16', 'bfloat16']) {
  const special = [...finite.float16, ...finite.bfloat16, ...NAN_BITS.map((bits) => ({ bits }))];
  const n = fixupLength(special.length);
  const arena = new binding.ShadowArena(dtype, [n]);
  arena.copyFrom([placed(n, 0.25, special, fixupPosition)]);
  hash.update(arena.readBytes(0));
  // Results 1.375 times the special values (subnormal, saturating, NaN), non-finite neighbours.
  const params = placed(n, 1.5, special.map((v) => (typeof v === 'number' ? v * 1.5 : v)), fixupPosition);
  special.forEach((_, i) => (params[fixupPosition(i) + 3] = i % 2 ? NaN : -Infinity));
  for (const nonFinite of ['skip-element', 'propagate']) {
    for (const rounding of ['stochastic', 'nearest']) {
      hash.update(`${arena.update([params], { decay: 0.25, nonFinite, rounding, seed: 9, updateIndex: 2 })};`);
      hash.update(arena.readBytes(0));
    }
  }
  const out = new Float32Array(n);
  arena.copyTo([out]);
  hash.update(Buffer.from(out.buffer));
  arena.dispose();
}
process.stdout.write(JSON.stringify({ isa: binding.cpuInfo().isa, digest: hash.digest('hex') }));
