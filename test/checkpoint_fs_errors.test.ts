// File-system failures of save() and load(): best-effort folder fsync where the OS refuses it
// (a write-only folder used to fail a save that had written a complete file), and errors that name
// the path the caller gave, keep the original code and cause, and leave the previous file intact.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExponentialMovingAverage } from '../src';
import { isDirectorySyncOptional, syncDirectory } from '../src/checkpoint/atomic_write';
import { loadCheckpoint } from '../src/checkpoint/ema_checkpoint';
import { expectSameState } from './helpers/state';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-fserr-'));
});
afterEach(() => {
  jest.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;

function makeEma(elements = 3) {
  const value = new Float32Array(elements).map((_, i) => i);
  const ema = new ExponentialMovingAverage([{ name: 'w', value }], { decay: 0.5 });
  return { ema, value };
}

/** An error as Node's fs makes them. */
function systemError(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected failure, ${syscall}`), { code, errno: -1, syscall });
}

/** Makes `method` of every file handle that fs/promises' open() returns for a temp file fail with `error`. */
function failTempFileHandles(method: 'write' | 'sync', error: NodeJS.ErrnoException): void {
  // The module object itself (as src/ gets it), not an import's namespace copy.
  const fsPromises = require('node:fs/promises') as typeof import('node:fs/promises');
  const realOpen = fsPromises.open;
  jest.spyOn(fsPromises, 'open').mockImplementation(async (...args: Parameters<typeof realOpen>) => {
    const handle = await realOpen(...args);
    if (String(args[0]).endsWith('.tmp')) handle[method] = (() => Promise.reject(error)) as never;
    return handle;
  });
}

function rejectionOf(promise: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: NodeJS.ErrnoException) => error,
  );
}

describe('folder fsync is best effort where the OS refuses it; the file fsync is not', () => {
  (isRoot ? test : test.skip)('save() into a folder that can be written and searched but not read (0333) succeeds, as a non-root user', async () => {
    // Root ignores permission bits, so the save runs in a child process as `nobody`. Skipped when
    // not running as root (the child could not switch user).
    fs.chmodSync(dir, 0o711);
    const folder = path.join(dir, 'write-only');
    fs.mkdirSync(folder);
    fs.chmodSync(folder, 0o333);
    const target = path.join(folder, 'ema.safetensors');
    const child = spawnSync(process.execPath, [path.join(__dirname, 'helpers/save_as_child.js'), target], {
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe('saved\n');
    const loaded = await loadCheckpoint(target, { names: ['w'], sizes: [3] });
    expect(loaded.numUpdates).toBe(4);
  });

  test.each(['EACCES', 'EPERM', 'EISDIR', 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP'])('a folder that cannot be opened with %s is skipped', async (code) => {
    await expect(syncDirectory(dir, () => Promise.reject(systemError(code, 'open')))).resolves.toBeUndefined();
    expect(isDirectorySyncOptional(systemError(code, 'fsync'))).toBe(true);
  });

  test('other folder failures (EIO) still fail the save', async () => {
    await expect(syncDirectory(dir, () => Promise.reject(systemError('EIO', 'open')))).rejects.toMatchObject({ code: 'EIO' });
    expect(isDirectorySyncOptional(systemError('EIO', 'fsync'))).toBe(false);
    expect(isDirectorySyncOptional(new Error('no code'))).toBe(false);
  });

  test("a failing fsync of the file itself fails the save, names the target, and keeps the previous file", async () => {
    const { ema, value } = makeEma();
    const target = path.join(dir, 'ema.safetensors');
    await ema.save(target);
    const saved = ema.stateDict();
    value.fill(7);
    ema.update();
    failTempFileHandles('sync', systemError('EIO', 'fsync'));
    const error = await rejectionOf(ema.save(target));
    expect(error.message).toContain(`Cannot save to '${target}': EIO`);
    expect(error.code).toBe('EIO');
    expect((error.cause as NodeJS.ErrnoException).syscall).toBe('fsync');
    jest.restoreAllMocks();
    expect(fs.readdirSync(dir)).toEqual(['ema.safetensors']);
    await ema.load(target);
    expectSameState(ema.stateDict(), saved);
    ema.dispose();
  });
});

// A 64 KiB tmpfs, where mount is permitted (root, outside most containers' restrictions).
const tiny = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-tinyfs-'));
let tinyMounted = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', tiny], { stdio: 'ignore' });
  tinyMounted = true;
} catch {
  // not permitted: the injected ENOSPC test below covers the message
}
afterAll(() => {
  if (tinyMounted) execFileSync('umount', [tiny]);
  fs.rmSync(tiny, { recursive: true, force: true });
});

describe('errors name the path and keep code and cause', () => {
  async function expectDiskFull(target: string, folder: string): Promise<void> {
    const small = makeEma();
    await small.ema.save(target);
    const big = makeEma(40_000); // 160 KB
    const error = await rejectionOf(big.ema.save(target));
    expect(error.message).toMatch(new RegExp(`^Cannot save to '${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}': ENOSPC`));
    expect(error.code).toBe('ENOSPC');
    expect((error.cause as NodeJS.ErrnoException).code).toBe('ENOSPC');
    jest.restoreAllMocks();
    expect(fs.readdirSync(folder)).toEqual(['ema.safetensors']); // the temporary file is gone
    const expected = small.ema.stateDict();
    await big.ema.load(target).catch(() => undefined); // different sizes: refused
    small.ema.update();
    await small.ema.load(target);
    expectSameState(small.ema.stateDict(), expected);
    small.ema.dispose();
    big.ema.dispose();
  }

  (tinyMounted ? test : test.skip)('disk full on a real 64 KiB tmpfs (skipped where mount is not permitted)', async () => {
    await expectDiskFull(path.join(tiny, 'ema.safetensors'), tiny);
  });

  test('disk full (an injected ENOSPC from write)', async () => {
    const target = path.join(dir, 'ema.safetensors');
    const small = makeEma();
    await small.ema.save(target);
    failTempFileHandles('write', systemError('ENOSPC', 'write'));
    const error = await rejectionOf(small.ema.save(target));
    expect(error.message).toContain(`Cannot save to '${target}': ENOSPC`);
    expect(error.code).toBe('ENOSPC');
    expect((error.cause as NodeJS.ErrnoException).syscall).toBe('write');
    jest.restoreAllMocks();
    expect(fs.readdirSync(dir)).toEqual(['ema.safetensors']);
    small.ema.dispose();
  });

  test('load errors name the file: missing, truncated, corrupted', async () => {
    const { ema } = makeEma(100);
    const missing = path.join(dir, 'missing.safetensors');
    let error = await rejectionOf(ema.load(missing));
    expect(error.message).toContain(`'${missing}'`);
    expect(error.code).toBe('ENOENT');

    const target = path.join(dir, 'ema.safetensors');
    await ema.save(target);
    const bytes = fs.readFileSync(target);
    fs.writeFileSync(target, bytes.subarray(0, bytes.length - 10));
    error = await rejectionOf(ema.load(target));
    expect(error.message).toMatch(/^Cannot read '.*ema\.safetensors': Invalid safetensors file/);
    expect(error.message).toContain(`'${target}'`);

    const corrupted = Buffer.from(bytes);
    corrupted[corrupted.length - 1] ^= 1;
    fs.writeFileSync(target, corrupted);
    error = await rejectionOf(ema.load(target));
    expect(error.message).toContain(`Cannot read '${target}': Invalid model-ema checkpoint: checksum`);
    ema.dispose();
  });

  test.each([
    ['252 ASCII bytes', `${'a'.repeat(240)}.safetensors`],
    ['255 ASCII bytes', `${'b'.repeat(243)}.safetensors`],
    ['255 bytes of two-byte characters', `${'é'.repeat(121)}x.safetensors`],
  ])('a valid file name of %s saves and loads (the temporary name stays within 255 bytes)', async (_, name) => {
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
    const { ema, value } = makeEma();
    const target = path.join(dir, name);
    await ema.save(target);
    const expected = ema.stateDict();
    value.fill(3);
    ema.update();
    await ema.load(target);
    expectSameState(ema.stateDict(), expected);
    expect(fs.readdirSync(dir)).toEqual([name]);
    ema.dispose();
  });
});
