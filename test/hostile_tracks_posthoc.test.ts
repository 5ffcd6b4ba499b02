// Hostile and careless use of EmaTracks' folder checkpoints, PostHocEma's background snapshots and
// the streamed checkpoint load: special files as folders, forged manifests, queued async calls that
// are not awaited, a snapshot folder that disappears mid-run, files that change while being read.
// Every failure must name what is at fault and leave the state unchanged.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmaTracks, ERROR_CODES, ExponentialMovingAverage, PostHocEma } from '../src';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-tp-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const TRACKS = { fast: { decay: 0.9 }, slow: { decay: 0.99 } };

function params(): Float32Array[] {
  return [Float32Array.from({ length: 33 }, (_, i) => i / 7), new Float32Array([4, -5, 6])];
}

function stateOf(t: EmaTracks): string {
  return JSON.stringify(Object.entries(t.stateDict().tracks).map(([name, s]) => [name, s.numUpdates, s.shadowParams.map((a) => [...a])]));
}

function trained(ps = params()): EmaTracks {
  const t = new EmaTracks(ps, { tracks: TRACKS });
  t.update();
  ps[0][3] += 1;
  t.update();
  return t;
}

function phema(dir: string, every = 1, ps = params()): PostHocEma {
  return new PostHocEma(ps, { sigmaRels: [0.05, 0.1], snapshotEvery: { steps: every }, dir });
}

const snapshotFiles = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.startsWith('phema-')).sort();
const trackFilesIn = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors') && !n.startsWith('phema-'));

describe('EmaTracks folder checkpoints', () => {
  test('save() into a FIFO, /dev/null or a regular file says what the path is, not mkdir EEXIST', async () => {
    const fifo = path.join(tmp, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const file = path.join(tmp, 'plain-file');
    fs.writeFileSync(file, 'x');
    const t = trained();
    const before = stateOf(t);
    await expect(t.save(fifo)).rejects.toThrow(`Cannot save to '${fifo}': it is a FIFO (named pipe), not a folder`);
    await expect(t.save('/dev/null')).rejects.toThrow("Cannot save to '/dev/null': it is a character device, not a folder");
    await expect(t.save(file)).rejects.toMatchObject({ code: ERROR_CODES.INVALID_ARGUMENT, message: `Cannot save to '${file}': it is a regular file, not a folder` });
    await expect(t.save(path.join(file, 'under'))).rejects.toThrow(/ENOTDIR/);
    await expect(t.load(fifo)).rejects.toThrow(`Cannot read '${path.join(fifo, 'tracks.json')}'`);
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
    expect(stateOf(t)).toBe(before);
    t.dispose();
  });

  test('a manifest naming one file for two tracks is refused, naming the entry; nothing changes', async () => {
    const dir = path.join(tmp, 'same-file');
    const source = trained();
    await source.save(dir);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'tracks.json'), 'utf8'));
    manifest.tracks[1].file = manifest.tracks[0].file;
    fs.writeFileSync(path.join(dir, 'tracks.json'), JSON.stringify(manifest));
    const t = new EmaTracks(params(), { tracks: TRACKS });
    const before = stateOf(t);
    await expect(t.load(dir)).rejects.toMatchObject({
      code: ERROR_CODES.INVALID_CHECKPOINT,
      message: expect.stringContaining(`tracks[1].file "${manifest.tracks[0].file}" is named by another track too`),
    });
    expect(stateOf(t)).toBe(before);
    source.dispose();
    t.dispose();
  });

  test('forged manifests (paths outside, duplicate names, huge, truncated, foreign) fail naming tracks.json', async () => {
    const dir = path.join(tmp, 'forged');
    const source = trained();
    await source.save(dir);
    const good = fs.readFileSync(path.join(dir, 'tracks.json'), 'utf8');
    const m = JSON.parse(good);
    const t = new EmaTracks(params(), { tracks: TRACKS });
    const before = stateOf(t);
    const cases: [string, string][] = [
      [JSON.stringify({ ...m, tracks: [{ name: 'fast', file: '../x' }, m.tracks[1]] }), 'tracks[0].file "../x" is not a track file name'],
      [JSON.stringify({ ...m, tracks: [{ name: 'fast', file: '/etc/passwd' }, m.tracks[1]] }), 'tracks[0].file "/etc/passwd" is not a track file name'],
      [JSON.stringify({ ...m, tracks: [m.tracks[0], m.tracks[0]] }), 'track "fast" is listed twice'],
      [' '.repeat((1 << 20) + 1), 'more than a manifest'],
      [good.slice(0, 30), 'it is not JSON'],
      ['[1,2]', "not 'model-ema-tracks'"],
    ];
    for (const [text, fragment] of cases) {
      fs.writeFileSync(path.join(dir, 'tracks.json'), text);
      await expect(t.load(dir)).rejects.toThrow(`Cannot read '${path.join(dir, 'tracks.json')}': not an EmaTracks manifest: `);
      await expect(t.load(dir)).rejects.toThrow(fragment);
    }
    expect(stateOf(t)).toBe(before);
    source.dispose();
    t.dispose();
  });

  test('a truncated track file fails the load naming that file; nothing changes', async () => {
    const dir = path.join(tmp, 'truncated-track');
    const source = trained();
    await source.save(dir);
    const file = path.join(dir, JSON.parse(fs.readFileSync(path.join(dir, 'tracks.json'), 'utf8')).tracks[1].file);
    fs.truncateSync(file, fs.statSync(file).size - 3);
    const t = new EmaTracks(params(), { tracks: TRACKS });
    const before = stateOf(t);
    await expect(t.load(dir)).rejects.toThrow(`Cannot read '${file}': Invalid safetensors file`);
    expect(stateOf(t)).toBe(before);
    source.dispose();
    t.dispose();
  });

  test('a save whose manifest cannot be written leaves no orphaned track files, and the old set loads', async () => {
    const dir = path.join(tmp, 'manifest-dir');
    const t = trained();
    const saved = stateOf(t);
    await t.save(dir);
    const kept = trackFilesIn(dir).sort();
    t.update();
    const moved = fs.readFileSync(path.join(dir, 'tracks.json'));
    fs.rmSync(path.join(dir, 'tracks.json'));
    fs.mkdirSync(path.join(dir, 'tracks.json'));
    await expect(t.save(dir)).rejects.toThrow(`Cannot save to '${path.join(dir, 'tracks.json')}': it is a directory`);
    expect(trackFilesIn(dir).sort()).toEqual(kept);
    fs.rmdirSync(path.join(dir, 'tracks.json'));
    fs.writeFileSync(path.join(dir, 'tracks.json'), moved);
    await t.load(dir);
    expect(stateOf(t)).toBe(saved);
    t.dispose();
  });

  test('save() copies every track at its call: an update() right after it is not in the files', async () => {
    const dir = path.join(tmp, 'tracks-at-call');
    const ps = params();
    const t = trained(ps);
    const atCall = stateOf(t);
    const saving = t.save(dir);
    ps[0].fill(7);
    t.update();
    await saving;
    const loaded = new EmaTracks(params(), { tracks: TRACKS });
    await loaded.load(dir);
    expect(stateOf(loaded)).toBe(atCall);
    t.dispose();
    loaded.dispose();
  });

  test('one-shot iterables, throwing getters and thenables: errors pass through, state unchanged', async () => {
    const ps = params();
    const t = new EmaTracks((function* () { yield* ps; })(), { tracks: TRACKS });
    t.update();
    const before = stateOf(t);
    const throwing = { name: 'x', get value(): Float32Array { throw new Error('getter boom'); } };
    expect(() => t.update([throwing, ps[1]])).toThrow('getter boom');
    expect(() => t.update((function* () { yield ps[0]; throw new Error('iterator boom'); })())).toThrow('iterator boom');
    expect(() => t.update([Promise.resolve(ps[0]) as never, ps[1]])).toThrow('for parameters[0] but received a Promise');
    await expect(t.updateAsync([{ then: (r: (v: unknown) => void) => r(ps[0]) } as never, ps[1]])).rejects.toThrow('for parameters[0]');
    expect(stateOf(t)).toBe(before);
    const once = (function* () { yield* ps; })();
    t.update(once);
    expect(() => t.update(once)).toThrow('Expected 2 parameters');
    t.dispose();
  });

  test('updateAsync() then dispose(), save(), load() without awaiting: refused or run in call order', async () => {
    const ps = params();
    const t = trained(ps);
    const dir = path.join(tmp, 'queued');
    ps[0].fill(2);
    const u1 = t.updateAsync();
    expect(() => t.dispose()).toThrow(expect.objectContaining({ code: ERROR_CODES.BUSY }));
    const saving = t.save(dir);
    ps[0].fill(3); // the save copies after u1, before u2
    const u2 = t.updateAsync();
    const loading = t.load(dir);
    await Promise.all([u1, saving, u2, loading]);
    const expected = trained(params());
    expected.update([new Float32Array(33).fill(2), params()[1]]);
    expect(stateOf(t)).toBe(stateOf(expected));
    t.dispose();
    expected.dispose();
  });
});

describe('PostHocEma background snapshots', () => {
  test('queued updateAsync() calls (not awaited) all resolve, with one snapshot per multiple of snapshotEvery', async () => {
    const every1 = path.join(tmp, 'queued-1');
    const p = phema(every1);
    await Promise.all([p.updateAsync(), p.updateAsync(), p.updateAsync()]);
    await p.flush();
    expect(snapshotFiles(every1)).toEqual([1, 2, 3].flatMap((t) => [0, 1].map((k) => `phema-${String(t).padStart(15, '0')}-0${k}.safetensors`)));
    p.dispose();

    const every2 = path.join(tmp, 'queued-2');
    const q = phema(every2, 2);
    await Promise.all([q.updateAsync(), q.updateAsync(), q.updateAsync(), q.updateAsync(), q.updateAsync()]);
    await q.flush();
    expect((await q.snapshots()).map((s) => s.t)).toEqual([2, 2, 4, 4]); // none at 3 or 5
    // A snapshot holds the state of its own time, not a later one.
    const at2 = await PostHocEma.synthesize(every2, { sigmaRel: 0.05, at: 2 });
    const alone = phema(path.join(tmp, 'queued-2-ref'), 2);
    alone.update();
    alone.update();
    await alone.flush();
    expect(at2.values).toEqual((await PostHocEma.synthesize(alone.dir, { sigmaRel: 0.05, at: 2 })).values);
    q.dispose();
    alone.dispose();
  });

  test('save() copies the tracks at its call, as EmaTracks.save() does', async () => {
    const dir = path.join(tmp, 'save-at-call');
    const ps = params();
    const p = phema(dir, 1000, ps);
    p.update();
    const atCall = JSON.stringify(p.track(0.05).stateDict());
    const saving = p.save();
    ps[0].fill(9);
    p.update(); // runs before the save's files are written
    await saving;
    const resumed = phema(dir, 1000);
    await resumed.load();
    expect(resumed.t).toBe(1);
    expect(JSON.stringify(resumed.track(0.05).stateDict())).toBe(atCall);
    p.dispose();
    resumed.dispose();
  });

  test('a snapshot folder replaced by a file mid-run: flush() names it; a save() meanwhile writes no tracks.json', async () => {
    const dir = path.join(tmp, 'vanishing');
    const elsewhere = path.join(tmp, 'vanishing-save');
    const p = phema(dir, 2);
    p.update();
    p.update();
    await p.flush();
    fs.rmSync(dir, { recursive: true });
    fs.writeFileSync(dir, 'not a folder');
    p.update();
    p.update(); // due at t 4: its write fails in the background
    await expect(p.save(elsewhere)).rejects.toThrow(`Cannot save to '${dir}': it is a regular file, not a folder`);
    expect(fs.readdirSync(elsewhere)).toEqual([]); // no manifest, no orphaned track files
    expect(p.t).toBe(4);
    p.update();
    p.update();
    await expect(p.flush()).rejects.toThrow(`Cannot save to '${dir}'`);
    p.dispose();
  });

  test('foreign, truncated and oddly named phema-* files fail synthesis naming the file', async () => {
    const dir = path.join(tmp, 'phema-bad');
    const p = phema(dir, 1);
    for (let i = 0; i < 3; i++) p.update();
    await p.flush();
    p.dispose();
    const [, , victim] = snapshotFiles(dir);
    const copy = (name: string, change: (d: string) => void): string => {
      const d = path.join(tmp, `phema-bad-${name}`);
      fs.cpSync(dir, d, { recursive: true });
      change(d);
      return d;
    };
    const truncated = copy('trunc', (d) => fs.truncateSync(path.join(d, victim), 40));
    await expect(PostHocEma.synthesize(truncated, { sigmaRel: 0.07 })).rejects.toThrow(`Cannot read '${path.join(truncated, victim)}': the file is truncated`);
    const foreign = copy('foreign', (d) => fs.writeFileSync(path.join(d, victim), 'hello, not a snapshot'));
    await expect(PostHocEma.synthesize(foreign, { sigmaRel: 0.07 })).rejects.toThrow(`Cannot read '${path.join(foreign, victim)}': not a post-hoc EMA snapshot`);
    const odd = copy('odd', (d) => fs.writeFileSync(path.join(d, 'phema-1-0.safetensors'), ''));
    await expect(PostHocEma.synthesize(odd, { sigmaRel: 0.07 })).rejects.toThrow(`'${path.join(odd, 'phema-1-0.safetensors')}': not a post-hoc EMA snapshot: its name`);
    await expect(PostHocEma.synthesize(dir, { sigmaRel: 0.3 })).rejects.toThrow('options.sigmaRel but received 0.3');
    await expect(PostHocEma.synthesize(dir, { sigmaRel: 0.07, at: 4 })).rejects.toThrow('the nearest snapshot time is 3');
    expect(() => phema(path.join(tmp, 'e'), 0)).toThrow('for snapshotEvery.steps but received 0');
    expect(() => phema(path.join(tmp, 'e'), 2 ** 53)).toThrow('for snapshotEvery.steps but received 9007199254740992');
  });
});

describe('streamed load against a file that changes', () => {
  test('a file shrinking or overwritten while read fails naming it; the EMA is unchanged', async () => {
    const ps = [new Float32Array(9_000_000).fill(1)]; // 36 MB: three 16 MiB chunks
    const ema = new ExponentialMovingAverage(ps, { decay: 0.9 });
    const file = path.join(tmp, 'changing.safetensors');
    await ema.save(file);
    const original = fs.readFileSync(file);
    ema.update(ps.map((p) => p.map(() => 2)));
    const before = ema.stateDict().shadowParams[0].slice(0, 4).join();
    const mutate = (change: () => void) => {
      let done = false;
      return { onProgress: () => { if (!done) { done = true; change(); } } };
    };
    await expect(ema.load(file, mutate(() => fs.truncateSync(file, original.length - 1024)))).rejects.toThrow(`Cannot read '${file}': `);
    fs.writeFileSync(file, original);
    await expect(ema.load(file, mutate(() => {
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, Buffer.alloc(64, 7), 0, 64, original.length - 100);
      fs.closeSync(fd);
    }))).rejects.toThrow(`Cannot read '${file}': Invalid model-ema checkpoint: checksum of tensor`);
    expect(ema.stateDict().shadowParams[0].slice(0, 4).join()).toBe(before);
    fs.writeFileSync(file, original);
    await ema.load(file, mutate(() => fs.appendFileSync(file, Buffer.alloc(4096)))); // read up to the size at open
    expect(ema.stateDict().shadowParams[0][0]).toBe(1);
    ema.update(ps.map((p) => p.map(() => 2)));
    const after = ema.stateDict().shadowParams[0].slice(0, 4).join();
    await expect(ema.load(tmp)).rejects.toThrow(`Cannot read '${tmp}': it is a directory`);
    expect(ema.stateDict().shadowParams[0].slice(0, 4).join()).toBe(after);
    ema.dispose();
  });
});
