// `npx model-ema inspect <file>`: a checkpoint's parameters, dtype, decay, counters and schedule,
// printed only after the checkpoint decoder verified it (layout, metadata digest, checksums); an
// invalid file is exit code 1 with the decoder's reason, a usage error exit code 2.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExponentialMovingAverage } from '../src';
import { main } from '../src/cli/main';

const root = path.resolve(__dirname, '..');
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-cli-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function sink(): { text: string; write(text: string): void } {
  return {
    text: '',
    write(text: string) {
      this.text += text;
    },
  };
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = sink();
  const err = sink();
  const code = await main(args, out, err);
  return { code, stdout: out.text, stderr: err.text };
}

/** A checkpoint with a duplicate name, an unnamed parameter, bfloat16 shadows, a store() backup, a schedule and counters. */
async function writeCheckpoint(file: string): Promise<void> {
  const w = new Float32Array(6).fill(1);
  const b = new Float32Array([2]);
  const v = new Float32Array([3, 4]);
  const ema = new ExponentialMovingAverage([{ name: 'fc.weight', value: w }, b, { name: 'fc.weight', value: v }], {
    decay: 0.999,
    dtype: 'bfloat16',
    schedule: { kind: 'inverse-gamma', gamma: 1, power: 0.75 },
  });
  ema.update(undefined, { steps: 3, samples: 96, seconds: 1.5 });
  ema.update(undefined, { steps: 2, samples: 64, seconds: 1 });
  ema.store();
  await ema.save(file);
  ema.dispose();
}

describe('model-ema inspect', () => {
  test('prints names, shapes, dtype, decay, counters and schedule of a verified checkpoint', async () => {
    const file = path.join(dir, 'ok.safetensors');
    await writeCheckpoint(file);
    const { code, stdout, stderr } = await cli('inspect', file);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: model-ema checkpoint, format version 3, \\d+\\.\\d KiB$`));
    expect(lines.slice(1)).toEqual([
      'checksums: verified (6 tensors, and the metadata digest)',
      'dtype: bfloat16; store() backup: float32',
      'decay: 0.999',
      'num_updates: null (only the torch_ema schedule counts it)',
      'counters: step 5, samples 160, seconds 2.5',
      'non-finite: 0 updates skipped, 0 elements skipped',
      'schedule: {"kind":"inverse-gamma","gamma":1,"power":0.75,"minDecay":0,"startStep":0}',
      'parameters: 3, 9 elements',
      '  #  name         shape  elements  tensor',
      '  0  "fc.weight"  [6]    6         shadow.fc.weight#0',
      '  1  (unnamed)    [1]    1         shadow.1',
      '  2  "fc.weight"  [2]    2         shadow.fc.weight#2',
    ]);
  });

  test('--json gives the same report as data', async () => {
    const file = path.join(dir, 'json.safetensors');
    await writeCheckpoint(file);
    const { code, stdout } = await cli('inspect', '--json', file);
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report).toMatchObject({
      path: file, formatVersion: '3', dtype: 'bfloat16', collectedDType: 'float32', decay: 0.999, numUpdates: null,
      step: 5, samples: 160, seconds: 2.5, verifiedTensors: 6,
      schedule: { kind: 'inverse-gamma', gamma: 1, power: 0.75 },
    });
    expect(report.parameters.map((p: { name: string | null; shape: number[] }) => [p.name, p.shape])).toEqual([['fc.weight', [6]], [null, [1]], ['fc.weight', [2]]]);
    expect(report.bytes).toBe(fs.statSync(file).size);
  });

  test('a flipped byte in a tensor: exit code 1 and the checksum failure, nothing on stdout', async () => {
    const file = path.join(dir, 'corrupt.safetensors');
    await writeCheckpoint(file);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 3] ^= 0x01;
    fs.writeFileSync(file, bytes);
    const { code, stdout, stderr } = await cli('inspect', file);
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toMatch(/^model-ema inspect: .*corrupt\.safetensors.*checksum of tensor "collected\.fc\.weight#2" does not match its data/);
  });

  test('edited metadata (decay 0.999 -> 0.990): exit code 1, the metadata digest does not match', async () => {
    const file = path.join(dir, 'edited.safetensors');
    await writeCheckpoint(file);
    const text = fs.readFileSync(file).toString('latin1');
    expect(text).toContain('"decay":"0.999"');
    fs.writeFileSync(file, Buffer.from(text.replace('"decay":"0.999"', '"decay":"0.990"'), 'latin1'));
    const { code, stderr } = await cli('inspect', file);
    expect(code).toBe(1);
    expect(stderr).toContain('metadata_sha256 does not match the metadata');
  });

  test('not a checkpoint, or no file at all: exit code 1 naming the path and the reason', async () => {
    const text = path.join(dir, 'notes.txt');
    fs.writeFileSync(text, 'hello, this is not a safetensors file');
    const notSafetensors = await cli('inspect', text);
    expect(notSafetensors.code).toBe(1);
    expect(notSafetensors.stderr).toMatch(/notes\.txt.*Invalid safetensors file/);
    const missing = await cli('inspect', path.join(dir, 'missing.safetensors'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/missing\.safetensors.*ENOENT/);
  });

  test('usage errors: exit code 2 with the usage; --help: exit code 0', async () => {
    for (const args of [[], ['inspect'], ['inspect', 'a', 'b'], ['show', 'a']]) {
      const { code, stdout, stderr } = await cli(...args);
      expect({ args, code, stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(stderr).toContain('Usage: model-ema inspect [--json] <file.safetensors>');
    }
    expect((await cli('show', 'a')).stderr).toContain('unknown command "show"');
    expect((await cli('--help')).code).toBe(0);
  });

  test('as a process (the package.json bin): exit codes 0 and 1 reach the shell', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(pkg.bin).toEqual({ 'model-ema': 'dist/cli/main.js' });
    expect(fs.readFileSync(path.join(root, 'src', 'cli', 'main.ts'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const good = path.join(dir, 'process.safetensors');
    await writeCheckpoint(good);
    const run = (file: string) =>
      spawnSync(process.execPath, ['-r', path.join(__dirname, 'helpers', 'register_ts.js'), path.join(root, 'src', 'cli', 'main.ts'), 'inspect', file], { encoding: 'utf8', timeout: 30_000 });
    const ok = run(good);
    expect({ status: ok.status, stderr: ok.stderr }).toEqual({ status: 0, stderr: '' });
    expect(ok.stdout).toContain('checksums: verified (6 tensors');
    const bad = run(path.join(dir, 'nothing-here.safetensors'));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('ENOENT');
  });
});
