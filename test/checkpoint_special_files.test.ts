// Checkpoint paths that name something other than a regular file. load() refuses FIFOs, devices,
// sockets and directories before reading (a FIFO used to hang it forever); save() refuses to replace
// them (as root, a character device used to become a regular file). Both say which path and what it
// is, write nothing, and leave the EMA usable.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExponentialMovingAverage } from '../src';
import { fileIOHandler } from '../src/tfjs/save';
import { expectSameState } from './helpers/state';

let dir: string;
let fifos: string[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-special-'));
  fifos = [];
});
afterEach(() => {
  // A reader still blocked in open() of a FIFO (the bug) would keep this process alive forever:
  // opening the write end releases it.
  for (const fifo of fifos) {
    try {
      fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    } catch {
      // ENXIO: no reader is waiting, as it should be
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

function mkfifo(name: string): string {
  const fifo = path.join(dir, name);
  execFileSync('mkfifo', [fifo]);
  fifos.push(fifo);
  return fifo;
}

function makeEma() {
  const value = new Float32Array([1, 2, 3]);
  const ema = new ExponentialMovingAverage([{ name: 'w', value }], { decay: 0.5 });
  value.fill(5);
  ema.update();
  return { ema, value };
}

/**
 * The message `promise` rejects with within `ms` milliseconds; throws if it resolves or is still
 * pending then. (Errors from fs come from Node's realm, not jest's: no instanceof checks.)
 */
async function rejectionWithin(promise: Promise<unknown>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still pending'), ms)));
  try {
    const outcome = await Promise.race([promise.then(() => 'resolved', (error: Error) => ({ message: String(error.message) })), timeout]);
    if (typeof outcome === 'string') throw new Error(`expected a rejection within ${ms} ms, but the promise is ${outcome}`);
    return outcome.message;
  } finally {
    clearTimeout(timer);
  }
}

async function expectRefusedLoad(ema: ExponentialMovingAverage, target: string, kind: RegExp): Promise<void> {
  const before = ema.stateDict();
  const message = await rejectionWithin(ema.load(target), 3000);
  expect(message).toContain(`'${target}'`);
  expect(message).toMatch(kind);
  expect(message).toMatch(/not a regular file/);
  expectSameState(ema.stateDict(), before);
}

/** The EMA still works after a refusal: update, save, load. */
async function expectUsable(ema: ExponentialMovingAverage, value: Float32Array): Promise<void> {
  value.fill(9);
  ema.update();
  const saved = ema.stateDict();
  const file = path.join(dir, 'after.safetensors');
  await ema.save(file);
  ema.update();
  await ema.load(file);
  expectSameState(ema.stateDict(), saved);
}

function entries(): string[] {
  return fs.readdirSync(dir).sort();
}

describe('load() refuses what is not a regular file, before reading', () => {
  test('a FIFO: refused at once (it used to block forever), and the EMA stays usable', async () => {
    const { ema, value } = makeEma();
    const fifo = mkfifo('ema.safetensors');
    await expectRefusedLoad(ema, fifo, /FIFO/);
    await expectUsable(ema, value);
    ema.dispose();
  });

  test('a symbolic link to a FIFO is refused the same way', async () => {
    const { ema } = makeEma();
    const link = path.join(dir, 'link.safetensors');
    fs.symlinkSync(mkfifo('pipe'), link);
    await expectRefusedLoad(ema, link, /FIFO/);
    ema.dispose();
  });

  test.each([
    ['/dev/zero', /character device/],
    ['/dev/null', /character device/],
  ])('%s is refused as a character device', async (device, kind) => {
    const { ema, value } = makeEma();
    await expectRefusedLoad(ema, device, kind);
    await expectUsable(ema, value);
    ema.dispose();
  });

  test('a directory is refused', async () => {
    const { ema, value } = makeEma();
    const folder = path.join(dir, 'folder.safetensors');
    fs.mkdirSync(folder);
    await expectRefusedLoad(ema, folder, /directory/);
    await expectUsable(ema, value);
    ema.dispose();
  });

  test('a Unix socket is refused', async () => {
    const { ema } = makeEma();
    const socket = path.join(dir, 'sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    try {
      await expectRefusedLoad(ema, socket, /socket/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    ema.dispose();
  });

  test("tfjs fileIOHandler().load() refuses a FIFO as model.json or as a weights file", async () => {
    const folder = path.join(dir, 'model');
    fs.mkdirSync(folder);
    const jsonPath = path.join(folder, 'model.json');
    fifos.push(jsonPath);
    execFileSync('mkfifo', [jsonPath]);
    let message = await rejectionWithin(fileIOHandler(folder).load(), 3000);
    expect(message).toContain(`'${jsonPath}'`);
    expect(message).toMatch(/FIFO/);

    fs.rmSync(jsonPath);
    fs.writeFileSync(jsonPath, JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['weights.bin'], weights: [] }] }));
    const weights = path.join(folder, 'weights.bin');
    fifos.push(weights);
    execFileSync('mkfifo', [weights]);
    message = await rejectionWithin(fileIOHandler(folder).load(), 3000);
    expect(message).toContain(`'${weights}'`);
    expect(message).toMatch(/FIFO/);
  });
});

describe('save() refuses to replace what is not a regular file, before writing anything', () => {
  async function expectRefusedSave(ema: ExponentialMovingAverage, target: string, kind: RegExp): Promise<void> {
    const before = entries();
    const message = await rejectionWithin(ema.save(target), 3000);
    expect(message).toContain(`'${target}'`);
    expect(message).toMatch(kind);
    expect(message).not.toMatch(/\.tmp/); // the hidden temporary file is never mentioned: it was never made
    expect(entries()).toEqual(before);
  }

  const isRoot = process.getuid?.() === 0;
  (isRoot ? test : test.skip)('a character device (mknod, as root) is left in place', async () => {
    // Skipped when not running as root: only root can make a device node.
    const { ema, value } = makeEma();
    const device = path.join(dir, 'dev');
    execFileSync('mknod', [device, 'c', '1', '3']); // the null device's numbers
    await expectRefusedSave(ema, device, /character device/);
    expect(fs.lstatSync(device).isCharacterDevice()).toBe(true);
    await expectUsable(ema, value);
    ema.dispose();
  });

  test('a FIFO is left in place', async () => {
    const { ema, value } = makeEma();
    const fifo = mkfifo('ema.safetensors');
    await expectRefusedSave(ema, fifo, /FIFO/);
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
    await expectUsable(ema, value);
    ema.dispose();
  });

  test('a directory is refused with a clear message (no EISDIR about a temporary file)', async () => {
    const { ema, value } = makeEma();
    const folder = path.join(dir, 'ema.safetensors');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'keep'), 'x');
    await expectRefusedSave(ema, folder, /is a directory/);
    expect(fs.readdirSync(folder)).toEqual(['keep']);
    await expectUsable(ema, value);
    ema.dispose();
  });

  test('a symbolic link to a directory or to a FIFO is refused', async () => {
    const { ema } = makeEma();
    fs.mkdirSync(path.join(dir, 'folder'));
    fs.symlinkSync(path.join(dir, 'folder'), path.join(dir, 'to-folder'));
    await expectRefusedSave(ema, path.join(dir, 'to-folder'), /directory/);
    fs.symlinkSync(mkfifo('pipe'), path.join(dir, 'to-pipe'));
    await expectRefusedSave(ema, path.join(dir, 'to-pipe'), /FIFO/);
    ema.dispose();
  });

  test('a symbolic link to a regular file is replaced by the new file; the file it pointed to is untouched', async () => {
    const { ema } = makeEma();
    const old = path.join(dir, 'step-100.safetensors');
    fs.writeFileSync(old, 'previous checkpoint');
    const link = path.join(dir, 'latest.safetensors');
    fs.symlinkSync(old, link);
    await ema.save(link);
    expect(fs.lstatSync(link).isFile()).toBe(true);
    expect(fs.readFileSync(old, 'utf8')).toBe('previous checkpoint');
    const expected = ema.stateDict();
    ema.update();
    await ema.load(link);
    expectSameState(ema.stateDict(), expected);
    ema.dispose();
  });

  test('a dangling symbolic link is replaced by the new file', async () => {
    const { ema } = makeEma();
    const link = path.join(dir, 'latest.safetensors');
    fs.symlinkSync(path.join(dir, 'gone'), link);
    await ema.save(link);
    expect(fs.lstatSync(link).isFile()).toBe(true);
    expect(entries()).toEqual(['latest.safetensors']);
    ema.dispose();
  });
});
