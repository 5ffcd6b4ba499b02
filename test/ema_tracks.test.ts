// EmaTracks (SPEC "Several horizons in one pass"): T tracks updated by one fused native pass must be
// the same bytes as T separate ExponentialMovingAverages (every dtype, schedule, policy, rounding,
// thread split, sync or async), and the float32 tracks must follow the SPEC formula step by step
// (updateStep, test/reference.ts). Then the read side, state, folder checkpoints, to(), and errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmaTracks, ERROR_CODES, ExponentialMovingAverage, type EmaOptions, type TrackOptions } from '../src';
import { binding } from '../src/native';
import { DTYPES, fillRandom, random, sameBytes, updateStep, type DType } from './reference';

const SIZES = [0, 1, 7, 64, 4097, 300_001]; // the last is above the parallel threshold: threads split it
const TRACKS: Record<string, TrackOptions> = {
  fast: { decay: 0.9 },
  slow: { decay: 0.999, schedule: 'constant' },
  phema: { decay: 1, schedule: { kind: 'power-function', sigmaRel: 0.1 } },
};

function params(seed: number, sizes = SIZES): Float32Array[] {
  return sizes.map((n, i) => fillRandom(new Float32Array(n), seed * 31 + i));
}

function perturb(ps: Float32Array[], seed: number, nonFinite = false): void {
  const r = random(seed);
  for (const p of ps) {
    for (let i = 0; i < p.length; i++) p[i] += (r() - 0.5) * 0.2;
    if (nonFinite && p.length > 3) {
      p[Math.floor(r() * p.length)] = NaN;
      p[Math.floor(r() * p.length)] = -Infinity;
    }
  }
}

function shadowsOf(ema: { stateDict(): { shadowParams: ArrayBufferView[] } }): ArrayBufferView[] {
  return ema.stateDict().shadowParams;
}

function expectSameShadows(tracks: EmaTracks, separate: ExponentialMovingAverage[], context: string): void {
  tracks.trackNames.forEach((name, k) => {
    const a = shadowsOf(tracks.track(name));
    const b = shadowsOf(separate[k]);
    a.forEach((x, i) => {
      if (!sameBytes(x, b[i])) throw new Error(`${context}: track ${name}, tensor ${i} differs from a separate EMA`);
    });
    expect(tracks.track(name).step).toBe(separate[k].step);
    expect(tracks.track(name).nonFiniteStats).toEqual(separate[k].nonFiniteStats);
    expect(tracks.track(name).currentDecay).toBe(separate[k].currentDecay);
  });
}

async function compareWithSeparate(shared: Omit<EmaOptions, 'decay'>, nonFinite: boolean, async: boolean): Promise<void> {
  const ps = params(7);
  const tracks = new EmaTracks(ps, { tracks: TRACKS, ...shared } as never);
  const separate = Object.values(TRACKS).map((t) => new ExponentialMovingAverage(ps, { ...shared, ...t }));
  try {
    for (let s = 1; s <= 4; s++) {
      perturb(ps, s, nonFinite);
      const progress = { steps: s };
      if (async) {
        await tracks.updateAsync(undefined, progress);
        for (const e of separate) await e.updateAsync(undefined, progress);
      } else {
        tracks.update(undefined, progress);
        for (const e of separate) e.update(undefined, progress);
      }
      expectSameShadows(tracks, separate, `${JSON.stringify(shared)} step ${s}`);
    }
  } finally {
    tracks.dispose();
    separate.forEach((e) => e.dispose());
  }
}

describe('EmaTracks equals separate ExponentialMovingAverages, bit for bit', () => {
  test.each(DTYPES)('%s shadows, sync and async', async (dtype) => {
    await compareWithSeparate({ dtype }, false, false);
    await compareWithSeparate({ dtype }, false, true);
  });

  test.each(['skip-element', 'skip-update'] as const)("nonFinite '%s' with NaN and -Infinity in the parameters", async (nonFinite) => {
    await compareWithSeparate({ nonFinite }, true, false);
    await compareWithSeparate({ nonFinite, dtype: 'bfloat16' }, true, true);
  });

  test.each(['float16', 'bfloat16'] as const)('stochastic rounding (%s) draws the bits a separate EMA with the same seed draws', async (dtype) => {
    await compareWithSeparate({ dtype, rounding: 'stochastic', seed: 12345 }, false, false);
  });
});

test("updateAsync(.., { snapshot: false }) reads SharedArrayBuffer parameters in place, as update() would", async () => {
  const shared = SIZES.slice(0, 5).map((n, i) => fillRandom(new Float32Array(new SharedArrayBuffer(4 * n)), 40 + i));
  const copies = shared.map((p) => p.slice());
  const a = new EmaTracks(shared, { tracks: TRACKS });
  const b = new EmaTracks(copies, { tracks: TRACKS });
  perturb(shared, 5);
  copies.forEach((c, i) => c.set(shared[i]));
  await a.updateAsync(shared, { snapshot: false });
  b.update(copies);
  a.trackNames.forEach((n) => shadowsOf(a.track(n)).forEach((x, i) => expect(sameBytes(x, shadowsOf(b.track(n))[i])).toBe(true)));
  await expect(a.updateAsync(copies, { snapshot: false })).rejects.toThrow(/SharedArrayBuffer/);
  a.dispose();
  b.dispose();
});

test('queued updateAsync() calls each read the parameters as they were at the call', async () => {
  const ps = params(11, [1, 4097, 70_000]);
  const a = new EmaTracks(ps, { tracks: TRACKS, dtype: 'float16' });
  const b = new EmaTracks(ps, { tracks: TRACKS, dtype: 'float16' });
  const pending: Promise<void>[] = [];
  for (let round = 0; round < 2; round++) {
    for (let s = 1; s <= 4; s++) {
      perturb(ps, 100 * round + s);
      pending.push(a.updateAsync(undefined, { steps: s })); // queued behind the previous ones
      b.update(undefined, { steps: s });
    }
    perturb(ps, 999); // changes after the calls must not reach them
    await Promise.all(pending);
  }
  a.trackNames.forEach((n) => shadowsOf(a.track(n)).forEach((x, i) => expect(sameBytes(x, shadowsOf(b.track(n))[i])).toBe(true)));
  expect(a.track('phema').step).toBe(20);
  a.dispose();
  b.dispose();
});

describe('EmaTracks against the SPEC formula (float32, updateStep)', () => {
  test('three constant decays over awkward sizes, an unaligned view and a tensor the threads split', () => {
    const backing = new Float32Array(4097 + 8 + 1);
    const unalignedView = new Float32Array(backing.buffer, 4, 4097); // offset of one element
    const ps = [new Float32Array(1), new Float32Array(7), unalignedView, new Float32Array(300_001), ...Array.from({ length: 40 }, () => new Float32Array(3))];
    ps.forEach((p, i) => fillRandom(p, 100 + i));
    const decays = [0, 0.5, 0.99];
    const tracks = new EmaTracks(ps, { tracks: Object.fromEntries(decays.map((d, k) => [`d${k}`, { decay: d, schedule: 'constant' }])) });
    const expected = decays.map(() => ps.map((p) => Float64Array.from(p)));
    for (let step = 1; step <= 3; step++) {
      perturb(ps, 50 + step);
      tracks.update();
      decays.forEach((d, k) => expected[k].forEach((s, i) => s.forEach((v, j) => (s[j] = updateStep(v, ps[i][j], d, 'float32')))));
    }
    decays.forEach((_, k) => {
      const actual = shadowsOf(tracks.track(`d${k}`)) as Float32Array[];
      actual.forEach((a, i) => expect(Array.from(a)).toEqual(Array.from(expected[k][i])));
    });
    tracks.dispose();
  });
});

describe('EmaTracks read side, state and checkpoints', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-tracks-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('track(name) copies, scopes and reports its own decay; an unknown name is refused', async () => {
    const ps = params(1, [5, 9]);
    const tracks = new EmaTracks(ps, { tracks: TRACKS });
    perturb(ps, 2);
    tracks.update();
    const raw = ps.map((p) => p.slice());
    const fast = tracks.track('fast');
    expect(fast.decay).toBe(0.9);
    expect(tracks.track('slow').currentDecay).toBe(0.999);
    const expected = shadowsOf(fast) as Float32Array[];
    fast.withAveragedParameters(() => ps.forEach((p, i) => expect(sameBytes(p, expected[i])).toBe(true)));
    ps.forEach((p, i) => expect(sameBytes(p, raw[i])).toBe(true));
    const targets = ps.map((p) => new Float32Array(p.length));
    fast.copyTo(targets);
    targets.forEach((t, i) => expect(sameBytes(t, expected[i])).toBe(true));
    fast.decay = 0.8;
    expect(tracks.track('fast').decay).toBe(0.8);
    expect(() => tracks.track('medium')).toThrow(/Expected one of "fast", "slow", "phema" for name but received "medium"/);
    await expect(fast.withAveragedParameters(async () => 1)).resolves.toBe(1);
    tracks.dispose();
  });

  test('an open scope refuses update() and another track\'s scope; the first closing restores', () => {
    const ps = params(4, [6]);
    const tracks = new EmaTracks(ps, { tracks: TRACKS });
    const scope = tracks.track('fast').averageParameters();
    expect(() => tracks.update()).toThrow(expect.objectContaining({ code: ERROR_CODES.SCOPE_OPEN }));
    expect(() => tracks.track('slow').averageParameters()).toThrow(expect.objectContaining({ code: ERROR_CODES.SCOPE_OPEN, message: expect.stringMatching(/track "fast"/) }));
    scope.restore();
    tracks.update();
    tracks.dispose();
  });

  test('while updateAsync() runs, every track refuses (BUSY), and dispose() too', async () => {
    const ps = params(5, [1 << 20]);
    const tracks = new EmaTracks(ps, { tracks: TRACKS });
    const pending = tracks.updateAsync();
    expect(tracks.busy).toBe(true);
    expect(() => tracks.track('slow').copyTo()).toThrow(expect.objectContaining({ code: ERROR_CODES.BUSY }));
    expect(() => tracks.stateDict()).toThrow(expect.objectContaining({ code: ERROR_CODES.BUSY }));
    expect(() => tracks.dispose()).toThrow(expect.objectContaining({ code: ERROR_CODES.BUSY }));
    await pending;
    tracks.dispose();
    expect(() => tracks.update()).toThrow(expect.objectContaining({ code: ERROR_CODES.DISPOSED }));
    expect(() => tracks.track('fast')).toThrow(/EmaTracks has been disposed/);
  });

  test('stateDict() round trip; a bad state names the track and changes nothing', () => {
    const ps = params(6, [3, 11]);
    const a = new EmaTracks(ps, { tracks: TRACKS, dtype: 'bfloat16' });
    perturb(ps, 1);
    a.update(undefined, { steps: 3 });
    const state = a.stateDict();
    const b = new EmaTracks(ps, { tracks: TRACKS, dtype: 'bfloat16' });
    const before = b.stateDict();
    const broken = { tracks: { ...state.tracks, slow: { ...state.tracks.slow, decay: NaN } } };
    expect(() => b.loadStateDict(broken)).toThrow(/state.tracks\["slow"\].*decay/);
    expect(() => b.loadStateDict({ tracks: { fast: state.tracks.fast } })).toThrow(/Expected the tracks \["fast","slow","phema"\]/);
    expect(b.stateDict()).toEqual(before);
    b.loadStateDict(state);
    expect(b.stateDict()).toEqual(state);
    expect(b.track('phema').step).toBe(3);
    a.dispose();
    b.dispose();
  });

  test('save()/load() of a folder: one checkpoint per track, replaced as a set; a bad folder changes nothing', async () => {
    const ps = params(8, [2, 4097]);
    const a = new EmaTracks(ps, { tracks: TRACKS });
    perturb(ps, 3);
    a.update();
    await a.save(dir);
    const first = fs.readdirSync(dir).sort();
    expect(first).toContain('tracks.json');
    expect(first.filter((f) => f.endsWith('.safetensors'))).toHaveLength(3);
    perturb(ps, 4);
    a.update();
    await a.save(dir);
    const second = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
    expect(second).toHaveLength(3); // the previous generation is gone
    expect(second.some((f) => first.includes(f))).toBe(false);
    // Each track file is an ordinary EMA checkpoint.
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'tracks.json'), 'utf8')) as { tracks: { name: string; file: string }[] };
    const single = new ExponentialMovingAverage(ps, { decay: 0.5 });
    await single.load(path.join(dir, manifest.tracks[1].file));
    expect(single.decay).toBe(0.999);
    single.dispose();

    const b = new EmaTracks(ps, { tracks: TRACKS });
    const untouched = b.stateDict();
    await b.load(dir);
    expect(b.stateDict()).toEqual(a.stateDict());

    const c = new EmaTracks(ps, { tracks: TRACKS });
    fs.unlinkSync(path.join(dir, manifest.tracks[2].file));
    await expect(c.load(dir)).rejects.toThrow(new RegExp(manifest.tracks[2].file));
    expect(c.stateDict()).toEqual(untouched);
    fs.writeFileSync(path.join(dir, 'tracks.json'), '{"format":"something-else"}');
    await expect(c.load(dir)).rejects.toThrow(/tracks.json.*not an EmaTracks manifest/);
    const other = new EmaTracks(ps, { tracks: { fast: { decay: 0.9 } } });
    await other.save(dir);
    await expect(c.load(dir)).rejects.toThrow(/its tracks \["fast"\] are not this EmaTracks'/);
    fs.rmSync(path.join(dir, 'tracks.json'));
    fs.mkdirSync(path.join(dir, 'tracks.json'));
    await expect(c.load(dir)).rejects.toThrow(/tracks.json/);
    expect(c.stateDict()).toEqual(untouched);
    [a, b, c, other].forEach((t) => t.dispose());
  });

  test('a load that fails at the last track, after save() left spare arenas, changes nothing; the next save/load round-trips', async () => {
    const ps = params(9, [3, 4097, 64]);
    const a = new EmaTracks(ps, { tracks: TRACKS });
    perturb(ps, 5);
    a.update();
    await a.save(dir); // every track's save keeps its copies as spares, which a load streams into
    const saved = a.stateDict();
    perturb(ps, 6);
    a.update();
    const before = a.stateDict();
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'tracks.json'), 'utf8')) as { tracks: { file: string }[] };
    const last = path.join(dir, manifest.tracks[2].file);
    fs.truncateSync(last, fs.statSync(last).size - 5);
    await expect(a.load(dir)).rejects.toThrow(new RegExp(manifest.tracks[2].file));
    expect(a.stateDict()).toEqual(before);
    expect(a.stateDict()).not.toEqual(saved);
    await a.save(dir);
    perturb(ps, 7);
    a.update();
    await a.load(dir);
    expect(a.stateDict()).toEqual(before);
    a.dispose();
  });

  test('to(): every track moves; a float16 overflow in one track moves none', () => {
    const ps = [new Float32Array([1, 2, 3])];
    const tracks = new EmaTracks(ps, { tracks: TRACKS });
    tracks.to({ dtype: 'bfloat16' });
    expect(tracks.trackNames.map((n) => tracks.track(n).stateDict().dtype)).toEqual(['bfloat16', 'bfloat16', 'bfloat16']);
    tracks.to({ dtype: 'float32' });
    ps[0][1] = 1e9;
    tracks.update(undefined, { steps: 1 }); // every track now holds a value far beyond float16
    expect(() => tracks.to({ dtype: 'float16' })).toThrow(/track "fast" shadows\[0\]\[1\]/);
    expect(tracks.dtype).toBe('float32');
    expect(tracks.trackNames.map((n) => tracks.track(n).stateDict().dtype)).toEqual(['float32', 'float32', 'float32']);
    tracks.dispose();
  });
});

describe('EmaTracks option errors name the option', () => {
  const ps = [new Float32Array(2)];
  test.each([
    [undefined, /options/],
    [{}, /tracks/],
    [{ tracks: {} }, /at least one track/],
    [{ tracks: [] }, /tracks/],
    [{ tracks: { a: 0.9 } }, /tracks\["a"\]/],
    [{ tracks: { a: { decay: NaN } } }, /tracks\["a"\]\.decay/],
    [{ tracks: { a: { decay: 0.9, shedule: 'constant' } } }, /Unknown option 'shedule' in tracks\["a"\] \(did you mean 'schedule'\?\)/],
    [{ tracks: { a: { decay: 0.9, schedule: { kind: 'power-function' } } } }, /tracks\["a"\]\.schedule\.gamma/],
    [{ tracks: { a: { decay: 0.9 } }, dtyp: 'float16' }, /Unknown option 'dtyp'/],
    [{ tracks: { a: { decay: 0.9 } }, publishEvery: 3 }, /Unknown option 'publishEvery'/],
    [{ tracks: { a: { decay: 0.9 } }, rounding: 'stochastic' }, /dtype 'float16' or 'bfloat16'/],
  ])('%j', (options, message) => {
    expect(() => new EmaTracks(ps, options as never)).toThrow(message);
  });

  test('a one-shot iterable of parameters is read once for every track', () => {
    const p = new Float32Array([4, 5]);
    const tracks = new EmaTracks((function* () { yield p; })(), { tracks: TRACKS });
    expect(tracks.sizes).toEqual([2]);
    tracks.dispose();
  });
});

describe('native updateTracks checks its arguments again', () => {
  const make = (sizes: number[], dtype: DType = 'float32') => new binding.ShadowArena(dtype, sizes, null);
  test('others, descriptions and arena compatibility', () => {
    const a = make([3]);
    const b = make([3]);
    const p = [new Float32Array(3)];
    expect(() => a.updateTracks(p, [{ decay: 0.5 }], [b])).toThrow(/Expected an array of 2 update descriptions/);
    expect(() => a.updateTracks(p, [{ decay: 0.5 }, { decay: 0.5 }], [{} as never])).toThrow(/Expected a ShadowArena for others\[0\]/);
    expect(() => a.updateTracks(p, [{ decay: 0.5 }, { decay: 0.5 }], [a])).toThrow(/not already in the list.*others\[0\]/);
    expect(() => a.updateTracks(p, [{ decay: 0.5 }, { decay: 0.5 }], [make([4])])).toThrow(/this one's sizes, dtype and device for others\[0\]/);
    expect(() => a.updateTracks(p, [{ decay: 0.5 }, { decay: 0.5 }], [make([3], 'float16')])).toThrow(/others\[0\]/);
    expect(() => a.updateTracks(p, [{ decay: 0.5 }, { decay: NaN }], [b])).toThrow(/descriptions\[1\]/);
    const gone = make([3]);
    gone.dispose();
    expect(() => a.updateTracks(p, [{ decay: 0.5 }, { decay: 0.5 }], [gone])).toThrow(/disposed/);
    expect(a.updateTracks([new Float32Array([1, 2, 3])], [{ decay: 0 }, { decay: 1 }], [b])).toEqual([0, 0]);
    expect(Array.from(a.read(0))).toEqual([1, 2, 3]);
    expect(Array.from(b.read(0))).toEqual([0, 0, 0]);
  });
});
