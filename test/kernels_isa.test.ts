// The kernels are compiled once per instruction set and picked at run time; the results must be
// bit-identical whichever one runs (the build disables FMA contraction for exactly this).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const script = path.join(__dirname, 'helpers', 'isa_digest.js');

function digest(isa: string, env: Record<string, string> = {}): { isa: string; digest: string } {
  const run = spawnSync(process.execPath, [script], { env: { ...process.env, MODEL_EMA_CPU_ISA: isa, ...env }, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`isa_digest.js failed for ${isa}: ${run.stderr}`);
  return JSON.parse(run.stdout) as { isa: string; digest: string };
}

test('every instruction set this CPU has produces the same bits as the baseline', () => {
  const results = ['baseline', 'avx2', 'avx512', 'avx512bf16'].map((isa) => digest(isa));
  expect(results[0].isa).toBe('baseline');
  // On a CPU without AVX2, AVX-512 or AVX512_BF16 the ceiling falls back; the digests must still agree.
  for (const r of results) expect(r.digest).toBe(results[0].digest);
  // Tell the reader which paths this machine could actually exercise.
  console.log(`instruction sets exercised: ${[...new Set(results.map((r) => r.isa))].join(', ')}`);
});

// Stochastic rounding's bits and the guard's counts are functions of the data and the element's
// position only: pieces split over 1, 2 or 3 threads (a tiny threshold splits even small arenas).
test('one, two and three threads produce the same bits (stochastic rounding and guards included)', () => {
  const runs = ['1', '2', '3'].map((threads) => digest('avx512bf16', { MODEL_EMA_THREADS: threads, MODEL_EMA_PARALLEL_THRESHOLD: '64' }));
  for (const r of runs) expect(r.digest).toBe(runs[0].digest);
  expect(runs[0].digest).toBe(digest('baseline').digest);
});
