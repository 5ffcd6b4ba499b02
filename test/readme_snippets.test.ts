// Every code block of README.md is a file under examples/readme/ (byte for byte, so they cannot
// drift apart), and every file is compiled and run here as a user would: the TypeScript ones by tsc
// for Node 20 CommonJS, against the package by its own name (dist/, built from the current sources
// in beforeAll), each in a fresh folder, with what it prints and writes checked. The Python one
// reads a checkpoint this test writes, when python3 with numpy is installed.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';
import { backends, ExponentialMovingAverage } from '../src';
import { codeBlocks } from './helpers/readme_blocks';
import { formatDiagnostics, strictOptions } from './helpers/typecheck';

const root = path.resolve(__dirname, '..');
const snippets = path.join(root, 'examples', 'readme');
// Inside the package, so that `require('model-ema')` in the compiled files resolves to this package.
const compiled = path.join(root, 'build', 'readme-snippets');
const blocks = codeBlocks(fs.readFileSync(path.join(root, 'README.md'), 'utf8'));

function run(command: string, args: string[], cwd: string) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${result.status} (${result.signal ?? 'no signal'}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

function freshDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-readme-'));
}

const runSnippet = (file: string, cwd = freshDir()) => ({ cwd, stdout: run(process.execPath, [file], cwd) });

describe('README code blocks are the files under examples/readme/', () => {
  test('every block names its file and equals it byte for byte; output listings are `text`', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(8);
    for (const block of blocks) {
      if (block.language === 'text') continue;
      expect({ line: block.line, language: block.language, file: block.file }).toEqual({ line: block.line, language: block.language, file: expect.stringMatching(/^examples\/readme\//) });
      expect({ file: block.file, text: block.text }).toEqual({ file: block.file, text: fs.readFileSync(path.join(root, block.file!), 'utf8') });
    }
  });

  test('every file under examples/readme/ is shown in the README, once', () => {
    const shown = blocks.filter((b) => b.file !== null).map((b) => b.file!).sort();
    expect(shown).toEqual(fs.readdirSync(snippets).map((f) => `examples/readme/${f}`).sort());
  });

  test("the first block's commands are what CI runs (npm ci && npm test) and a demo script that exists", () => {
    const commands = fs.readFileSync(path.join(snippets, 'commands.sh'), 'utf8').split('\n').filter(Boolean).map((l) => l.split('#')[0].trim());
    expect(commands).toEqual(['npm ci && npm run demo', 'npm ci && npm test']);
    expect(fs.readFileSync(path.join(root, '.ci', 'run'), 'utf8')).toMatch(/^npm ci && npm test$/m);
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(pkg.scripts.test).toBe('jest');
    const demo = /node (\S+\.js)$/.exec(pkg.scripts.demo);
    expect(demo).not.toBeNull();
    expect(fs.existsSync(path.join(root, demo![1]))).toBe(true);
  });
});

describe('README snippets compile and run (Node 20, CommonJS)', () => {
  beforeAll(() => {
    run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], root);
    // The settings the README gives: target ES2022 (tsc lowers `using`), CommonJS via node16.
    const options = strictOptions({
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      noEmit: false,
      outDir: compiled,
      rootDir: snippets,
      declaration: false,
    });
    const files = fs.readdirSync(snippets).filter((f) => f.endsWith('.ts')).map((f) => path.join(snippets, f));
    const program = ts.createProgram(files, options);
    const emitted = program.emit();
    expect(formatDiagnostics([...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics].map((d) => ({
      file: d.file ? path.relative(root, d.file.fileName) : '',
      line: d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0,
      code: d.code,
      text: ts.flattenDiagnosticMessageText(d.messageText, '\n'),
    })))).toEqual([]);
  }, 120_000);

  test('usage.ts: trains, evaluates in a scope, and saves a checkpoint that loads back with 100 updates', async () => {
    const { cwd, stdout } = runSnippet(path.join(compiled, 'usage.js'));
    expect(stdout).toMatch(/^loss with averaged weights: \d+\.\d+(e-?\d+)?, raw: \d+\.\d+/m);
    expect(stdout).toContain('exporting 2 averaged tensors');
    const ema = new ExponentialMovingAverage([new Float32Array(784 * 128), new Float32Array(128)], { decay: 0.5 });
    await ema.load(path.join(cwd, 'ema.safetensors'));
    expect({ decay: ema.decay, numUpdates: ema.numUpdates }).toEqual({ decay: 0.999, numUpdates: 100 });
    expect(ema.stateDict().shadowParams[1].some((v) => v !== 0)).toBe(true);
    ema.dispose();
  });

  test('parameter_kind.ts: a registered kind of your own, typed through ParameterTypes, is averaged', () => {
    const { stdout } = runSnippet(path.join(compiled, 'parameter_kind.js'));
    expect(stdout.trim()).toBe("[ 'w', 'b' ] [ [ 0.5, 1 ], [ 1.5 ] ]");
  });

  test('error_codes.ts: a BUSY error is told apart by its code, and the update goes through after settled()', () => {
    const { stdout } = runSnippet(path.join(compiled, 'error_codes.js'));
    expect(stdout.trim()).toBe('updates: 2');
  });

  test('buffers.js: emaForModel averages the trainable weights and the BatchNorm statistics', () => {
    const { stdout } = runSnippet(path.join(snippets, 'buffers.js'));
    expect(stdout.trim().split('\n').pop()).toBe('averaging 8 tensors (2 of them BatchNorm statistics), buffers: average');
  });

  test('serving.js and serving_worker.js: a worker serves from published versions, up to the last (10), then stops', () => {
    const { stdout } = runSnippet(path.join(snippets, 'serving.js'));
    const served = [...stdout.matchAll(/^served from version (\d+): first weight (\d+\.\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(served.length).toBeGreaterThan(0);
    expect(served[served.length - 1][0]).toBe(10);
    // Versions only go up; version v holds the average after 10v steps of weights = step.
    served.forEach(([version, first], i) => {
      if (i > 0) expect(version).toBeGreaterThan(served[i - 1][0]);
      expect(first).toBeGreaterThan(10 * version - 12);
      expect(first).toBeLessThanOrEqual(10 * version);
    });
  });

  test('tfjs.js: fit() with the callback (80 updates, val_loss_ema logged) and the averaged model saved with plain tfjs', () => {
    const { cwd, stdout } = runSnippet(path.join(snippets, 'tfjs.js'));
    expect(stdout).toMatch(/^val_loss \d+\.\d{4}, val_loss_ema \d+\.\d{4}, updates 80$/m);
    const modelJson = JSON.parse(fs.readFileSync(path.join(cwd, 'model-ema', 'model.json'), 'utf8'));
    expect(modelJson.weightsManifest[0].weights.map((w: { shape: number[] }) => w.shape)).toEqual([[4, 16], [16], [16, 1], [1]]);
    expect(fs.statSync(path.join(cwd, 'model-ema', 'weights.bin')).size).toBe((4 * 16 + 16 + 16 + 1) * 4);
  });

  test('resume.js: the model and the EMA saved side by side come back equal (shadows, counters, weights)', () => {
    const { cwd, stdout } = runSnippet(path.join(snippets, 'resume.js'));
    expect(stdout).toMatch(/^numUpdates 20 -> 20, same shadows: true, same weights: true$/m);
    expect(fs.readdirSync(path.join(cwd, 'checkpoint')).sort()).toEqual(['ema.safetensors', 'model.json', 'weights.bin']);
  });

  test('post_hoc.js: trains with two sigmaRels, synthesizes three others from the snapshots; the averages beat the raw weights', () => {
    const { stdout } = runSnippet(path.join(snippets, 'post_hoc.js'));
    const rows = [...stdout.matchAll(/^ {2}(.+?) +(\d+\.\d{4})$/gm)].map((m) => ({ what: m[1], loss: Number(m[2]) }));
    expect(rows.map((r) => r.what.replace(/ from \d+ snapshots/, ''))).toEqual([
      'raw weights',
      'sigmaRel 0.02 (synthesized)',
      'sigmaRel 0.05 (tracked)',
      'sigmaRel 0.1 (tracked)',
      'sigmaRel 0.15 (synthesized)',
      'sigmaRel 0.25 (synthesized)',
    ]);
    expect(rows[1].what).toMatch(/from 96 snapshots/); // 6 epochs of 128 batches, every 16 steps, 2 tracks
    for (const r of rows.slice(1)) expect(r.loss).toBeLessThan(rows[0].loss);
  });

  test('gpu.js: picks CUDA where usable, else the CPU, and says why; the update is the same either way', () => {
    const { stdout } = runSnippet(path.join(snippets, 'gpu.js'));
    const cuda = backends().find((b) => b.name === 'cuda');
    const usable = cuda?.available === true;
    const [first, second] = stdout.trim().split('\n').slice(-2);
    expect(first).toBe(usable ? `CUDA: ${cuda!.devices!.length} device(s)` : `CPU only: ${cuda?.reason ?? 'no CUDA backend in this build'}`);
    const value = /^shadows on (\S+); first value (\S+)$/.exec(second);
    expect(value?.[1]).toBe(usable ? 'cuda' : 'cpu');
    // torch_ema's first decay, min(0.999, 2 / 11), from shadows 1 towards parameters 3.
    expect(Number(value?.[2])).toBeCloseTo(1 + (1 - 2 / 11) * 2, 6);
  });
});

const python = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
const hasNumpy = python.status === 0;
const pythonTest = hasNumpy ? test : test.skip;
const skipNote = hasNumpy ? '' : ' [skipped: python3 with numpy is not installed here]';

describe('README Python snippet (load_checkpoint.py, plain numpy, no safetensors package)', () => {
  const names = ['fc.weight', 'dup', 'dup', null, '3']; // two duplicates, an unnamed one, and a name equal to its index
  const values = [[1, 2, 3, 4], [5], [6, 7], [8], [9]];

  async function writeCheckpoint(dtype: 'float32' | 'bfloat16'): Promise<{ cwd: string; shadows: number[][] }> {
    const parameters = values.map((v, i) => (names[i] === null ? Float32Array.from(v) : { name: names[i]!, value: Float32Array.from(v) }));
    const ema = new ExponentialMovingAverage(parameters, { decay: 0.75, dtype });
    ema.update(values.map((v) => Float32Array.from(v, (x) => x / 3)));
    const cwd = freshDir();
    await ema.save(path.join(cwd, 'ema.safetensors'));
    const shadows = ema.stateDict().shadowParams.map((s) => Array.from(s));
    ema.dispose();
    return { cwd, shadows };
  }

  const readInPython = (cwd: string) =>
    spawnSync('python3', ['-c', `import json, runpy; g = runpy.run_path(${JSON.stringify(path.join(snippets, 'load_checkpoint.py'))}); print(json.dumps({"shadows": [s.tolist() for s in g["shadows"]], "num_updates": g["num_updates"]}))`], { cwd, encoding: 'utf8', timeout: 60_000 });

  for (const dtype of ['float32', 'bfloat16'] as const) {
    pythonTest(`reads every shadow in parameter order, duplicates and unnamed included (${dtype})${skipNote}`, async () => {
      const { cwd, shadows } = await writeCheckpoint(dtype);
      const result = readInPython(cwd);
      expect(result.stderr).toBe('');
      const lines = result.stdout.trim().split('\n');
      expect(lines[0]).toBe(`decay 0.75, num_updates 1, dtype ${dtype}, 5 shadows`);
      expect(JSON.parse(lines[1])).toEqual({ shadows, num_updates: 1 });
      expect(shadows[0][0]).not.toBe(1); // the update moved the shadows
    });
  }

  pythonTest(`refuses a tensor whose bytes no longer match its checksum${skipNote}`, async () => {
    const { cwd } = await writeCheckpoint('float32');
    const file = path.join(cwd, 'ema.safetensors');
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] ^= 0x40; // the last tensor's last byte
    fs.writeFileSync(file, bytes);
    const result = readInPython(cwd);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/ValueError: ema\.safetensors: checksum of shadow\.\S+ does not match its data/);
  });
});
