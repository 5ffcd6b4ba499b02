// MODEL_EMA_CPU_ISA caps the instruction set the CPU kernels use. A value that is none of the
// valid ones is refused when the addon loads (from require, in the main thread and in workers),
// with a message naming the variable, the value and the valid values; it is never ignored.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.join(__dirname, '..');
const registerTs = path.join(__dirname, 'helpers', 'register_ts.js');
const index = path.join(root, 'src', 'index.ts');

function load(isa: string, script: string): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ['-r', registerTs, '-e', script], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, MODEL_EMA_CPU_ISA: isa },
    timeout: 30_000,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

const printIsa = `console.log(require(${JSON.stringify(index)}).cpuInfo().isa)`;

function expectRefusal(text: string, value: string): void {
  expect(text).toContain(`Invalid MODEL_EMA_CPU_ISA='${value}'`);
  expect(text).toContain("expected one of 'avx512bf16', 'avx512', 'avx2', 'baseline'");
  // The addon itself is fine: no advice to rebuild it.
  expect(text).not.toMatch(/could not load its native addon|npm rebuild/);
}

test.each(['foo', 'AVX2', 'avx-512', ' avx2', 'avx512_bf16', 'avx512BF16'])('MODEL_EMA_CPU_ISA=%j is refused by require, naming the valid values', (value) => {
  const { status, stderr } = load(value, printIsa);
  expect(status).not.toBe(0);
  expectRefusal(stderr, value);
});

test('in a worker_thread too, the refusal is the error of its require', () => {
  const script = `
    const { Worker } = require('node:worker_threads');
    const worker = new Worker(${JSON.stringify(`require(${JSON.stringify(index)})`)}, { eval: true, execArgv: ['-r', ${JSON.stringify(registerTs)}] });
    worker.on('error', (error) => console.log(JSON.stringify({ message: error.message, code: error.code })));`;
  const { status, stdout, stderr } = load('foo', script);
  expect(stderr).toBe('');
  expect(status).toBe(0);
  const error = JSON.parse(stdout.trim()) as { message: string; code: string };
  expectRefusal(error.message, 'foo');
  expect(error.code).toBe('ERR_MODEL_EMA_CPU_ISA');
});

test('valid values keep their meaning (a ceiling), and an empty value means unset', () => {
  const isa = (value: string) => {
    const { status, stdout, stderr } = load(value, printIsa);
    if (status !== 0) throw new Error(`MODEL_EMA_CPU_ISA=${value}: ${stderr}`);
    return stdout.trim();
  };
  const order = ['baseline', 'avx2', 'avx512', 'avx512bf16'];
  const best = isa('');
  expect(order).toContain(best);
  // Each ceiling gives itself where the CPU has it, else the best below it.
  for (const ceiling of order) {
    expect(isa(ceiling)).toBe(order[Math.min(order.indexOf(ceiling), order.indexOf(best))]);
  }
  expect(isa('avx512bf16')).toBe(best);
});
