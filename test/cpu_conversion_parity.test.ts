// Every instruction set's float32 <-> float16/bfloat16 conversion loops against the baseline's (the
// scalar reference of float_bits.h, which test/conversions.test.ts checks against float64), bit for
// bit, by build/conversion_parity_test (native/kernels/conversion_parity_test.cc): both signs of
// every exponent, every mantissa where the vector instructions part ways with the reference
// (subnormals, NaN payloads, float16's overflow boundary), and all 65536 16-bit patterns back.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

test('vector conversions equal the scalar reference on 156M float32 patterns, every ISA this CPU has', () => {
  const exe = path.join(__dirname, '..', 'build', 'conversion_parity_test');
  expect(fs.existsSync(exe)).toBe(true); // built with the addon by `npx cmake-js compile`
  const run = spawnSync(exe, [], { encoding: 'utf8', timeout: 120_000 });
  expect(run.stdout).toMatch(/^ok: \d+ patterns, 0 mismatches$/m);
  expect(run.status).toBe(0);
  console.log(run.stdout.split('\n')[0]); // which instruction sets this machine checked
}, 130_000);
