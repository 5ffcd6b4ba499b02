// options.shard: the deterministic balance, each rank averaging only its own parameters out of the
// full replica list, and sharded checkpoints: saved from world sizes 1, 2, 3, 4 and 7, loaded into
// 1, 2 and 5 (and single files into sharded EMAs), bit for bit what one unsharded EMA holds.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ERROR_CODES, ExponentialMovingAverage } from '../src';
import type { EmaOptions } from '../src';
import { assignRanks } from '../src/shard/layout';
import { fillRandom } from './reference';
import { expectBitsEqual, expectError, expectRejection } from './helpers/state';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-shard-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let folders = 0;
const freshFolder = (): string => fs.mkdtempSync(path.join(tmp, `${folders++}-`));

// Awkward: a 0-element tensor, sizes equal to each other (ties), odd sizes, a duplicate name and unnamed ones.
const SIZES = [17, 4097, 1, 0, 300, 17, 4097, 33, 2];
const NAMES = ['embed', null, 'dup', 'dup', 'fc.w', null, 'fc2.w', '7', 'bias'];

function replica(step: number): (Float32Array | { name: string; value: Float32Array })[] {
  return SIZES.map((n, i) => {
    const value = fillRandom(new Float32Array(n), 1000 * step + i);
    return NAMES[i] === null ? value : { name: NAMES[i]!, value };
  });
}

const valuesOf = (list: ReturnType<typeof replica>): Float32Array[] => list.map((p) => (p instanceof Float32Array ? p : p.value));

function ranks(worldSize: number, options: Omit<EmaOptions, 'shard'>, parameters = replica(0)): ExponentialMovingAverage[] {
  return Array.from({ length: worldSize }, (_, rank) => new ExponentialMovingAverage(parameters, { ...options, shard: { rank, worldSize } }));
}

/** The unsharded reference and `worldSize` ranks, all updated with the same replicas; a backup store()d. */
function trained(worldSize: number, options: Omit<EmaOptions, 'shard'> = { decay: 0.9 }) {
  const reference = new ExponentialMovingAverage(replica(0), options);
  const sharded = ranks(worldSize, options);
  for (let step = 1; step <= 4; step++) {
    const parameters = replica(step);
    reference.update(parameters);
    for (const ema of sharded) ema.update(parameters);
  }
  const raw = replica(9);
  reference.store(raw);
  for (const ema of sharded) ema.store(raw);
  return { reference, sharded };
}

/** Each EMA's shadows and backup equal the reference's at its parameters' positions, bit for bit. */
function expectSameAsReference(emas: ExponentialMovingAverage[], reference: ExponentialMovingAverage, context: string): void {
  const expected = reference.stateDict();
  const seen = new Set<number>();
  for (const ema of emas) {
    const indices = ema.shardInfo?.indices ?? SIZES.map((_, i) => i);
    const state = ema.stateDict();
    expect({ decay: state.decay, numUpdates: state.numUpdates, step: ema.step, dtype: state.dtype }).toEqual({ decay: expected.decay, numUpdates: expected.numUpdates, step: reference.step, dtype: expected.dtype });
    indices.forEach((g, j) => {
      seen.add(g);
      expectBitsEqual(state.shadowParams[j], expected.shadowParams[g], `${context}: shadow ${g}`);
      expectBitsEqual(state.collectedParams![j], expected.collectedParams![g], `${context}: backup ${g}`);
    });
  }
  expect(seen.size).toBe(SIZES.length); // together, the ranks hold every parameter once
}

describe('the balance', () => {
  test('largest first, to the least-loaded rank, ties to the lower rank, equal sizes in list order', () => {
    // 40 (index 1) -> rank 0; 40 (index 2) -> rank 1; 20 -> rank 0 (tie 40/40); 10 -> rank 1 (50 < 60); 5 -> rank 1 (50 < 60)
    expect(assignRanks([10, 40, 40, 5, 20], 2)).toEqual([1, 0, 1, 1, 0]);
    expect(assignRanks([3, 3, 3], 5)).toEqual([0, 1, 2]);
    expect(assignRanks([], 3)).toEqual([]);
  });

  test('shardInfo: each rank its parameters, the counts, and the ranks partition the list', () => {
    const emas = ranks(3, { decay: 0.9 });
    const infos = emas.map((e) => e.shardInfo!);
    // 4097 (index 1) -> 0, 4097 (index 6) -> 1, then everything else fits under 4097 on rank 2.
    expect(infos.map((i) => i.indices)).toEqual([[1], [6], [0, 2, 3, 4, 5, 7, 8]]);
    expect(infos.map((i) => i.elements)).toEqual([4097, 4097, 370]);
    expect(infos[0]).toMatchObject({ rank: 0, worldSize: 3, totalParameters: 9, totalElements: SIZES.reduce((a, b) => a + b) });
    expect(emas.map((e) => e.size)).toEqual([1, 1, 7]);
    expect(emas[2].names).toEqual(['embed', 'dup', 'dup', 'fc.w', null, '7', 'bias']);
    expect(emas[2].sizes).toEqual([17, 1, 0, 300, 17, 33, 2]);
    expect(new ExponentialMovingAverage(replica(0), { decay: 0.9 }).shardInfo).toBeNull();
  });
});

describe('options.shard is checked', () => {
  const cases: [unknown, string, string][] = [
    [2, 'TypeError', 'Expected { rank, worldSize } for shard but received 2'],
    [{ rank: 0 }, 'TypeError', 'for shard.worldSize but received undefined'],
    [{ rank: 0, worldSize: 0 }, 'RangeError', 'Expected an integer in [1, 99999] for shard.worldSize but received 0'],
    [{ rank: 0, worldSize: 1.5 }, 'RangeError', 'for shard.worldSize but received 1.5'],
    [{ rank: 0, worldSize: 100000 }, 'RangeError', 'for shard.worldSize but received 100000'],
    [{ rank: 2, worldSize: 2 }, 'RangeError', 'Expected an integer in [0, 1] (worldSize is 2) for shard.rank but received 2'],
    [{ rank: -1, worldSize: 2 }, 'RangeError', 'for shard.rank but received -1'],
    [{ rank: '0', worldSize: 2 }, 'TypeError', 'for shard.rank but received "0"'],
    [{ rank: 0, worldSize: 2, world: 2 }, 'TypeError', "Unknown option 'world' in options.shard"],
  ];
  test.each(cases)('%j', (shard, name, message) => {
    expectError(() => new ExponentialMovingAverage(replica(0), { decay: 0.9, shard } as unknown as EmaOptions), { name, message: [message], code: ERROR_CODES.INVALID_ARGUMENT });
  });

  test("nonFinite 'skip-update' is refused: one rank cannot decide to skip for all", () => {
    expectError(() => new ExponentialMovingAverage(replica(0), { decay: 0.9, nonFinite: 'skip-update', shard: { rank: 0, worldSize: 2 } }), {
      name: 'TypeError',
      message: ["nonFinite 'skip-update' cannot be used with shard", "'skip-element'"],
      code: ERROR_CODES.INVALID_ARGUMENT,
    });
  });
});

describe('each rank reads and writes only its own parameters of the full list', () => {
  test('update() ignores the other positions entirely (here: nulls), and matches the unsharded update there', () => {
    const { reference, sharded } = trained(2);
    const next = replica(5);
    reference.update(next);
    for (const ema of sharded) {
      const own = new Set(ema.shardInfo!.indices);
      ema.update(next.map((p, i) => (own.has(i) ? p : null)) as unknown as ReturnType<typeof replica>);
    }
    expectSameAsReference(sharded, reference, 'after an update with placeholders');
  });

  test('copyTo() writes its own parameters and leaves the others as they were', () => {
    const { reference, sharded } = trained(3);
    const target = valuesOf(replica(7));
    const before = target.map((t) => t.slice());
    sharded[1].copyTo(target);
    const expected = reference.stateDict().shadowParams;
    const own = sharded[1].shardInfo!.indices;
    target.forEach((t, i) => expectBitsEqual(t, own.includes(i) ? (expected[i] as Float32Array) : before[i], `parameter ${i}`));
  });

  test('a list of the wrong length names both counts; a wrong size names the position in the full list', () => {
    const [ema] = ranks(2, { decay: 0.9 });
    expectError(() => ema.update(replica(1).slice(1)), {
      name: 'RangeError',
      message: ['Expected the full list of 9 parameters', 'rank 0 of 2', 'for parameters of update() but received 8'],
      code: ERROR_CODES.INVALID_ARGUMENT,
    });
    const wrong = replica(1);
    wrong[4] = new Float32Array(16); // index 4 ('fc.w', 300 elements) belongs to rank 0; unnamed here, so the registered name is used
    expect(ema.shardInfo!.indices).toEqual([1, 4]);
    expectError(() => ema.update(wrong), { name: 'RangeError', message: ['Expected 300 elements (the size of its shadow) for parameter 4 ("fc.w") of parameters but received 16'], code: ERROR_CODES.INVALID_ARGUMENT });
    expect(ema.numUpdates).toBe(0);
  });
});

describe('registration under shard', () => {
  test("a lost parameter is refused only when it is this rank's, named by its position in the full list", () => {
    const parameters = replica(0);
    const detached = valuesOf(parameters)[6];
    const buffer = detached.buffer as ArrayBuffer;
    structuredClone(buffer, { transfer: [buffer] }); // now 0 elements, which the balance gives to rank 2
    expect(new ExponentialMovingAverage(parameters, { decay: 0.9, shard: { rank: 0, worldSize: 3 } }).shardInfo!.indices).toEqual([1]);
    expect(new ExponentialMovingAverage(parameters, { decay: 0.9, shard: { rank: 1, worldSize: 3 } }).shardInfo!.indices).toEqual([4]);
    expectError(() => new ExponentialMovingAverage(parameters, { decay: 0.9, shard: { rank: 2, worldSize: 3 } }), {
      name: 'TypeError',
      message: ['parameters[6]'],
      code: ERROR_CODES.PARAMETER_GONE,
    });
  });
});

describe('sharded checkpoints load into any world size, bit for bit', () => {
  const saved = new Map<number, { prefix: string; reference: ExponentialMovingAverage }>();

  test.each([1, 2, 3, 4, 7])('world size %i: the shards, the index, and the ranks equal the unsharded EMA before saving', async (worldSize) => {
    const { reference, sharded } = trained(worldSize);
    expectSameAsReference(sharded, reference, `world ${worldSize} in memory`);
    const prefix = path.join(freshFolder(), 'ema');
    await Promise.all(sharded.map((ema) => ema.save(prefix)));
    const files = Array.from({ length: worldSize }, (_, r) => `ema-${String(r + 1).padStart(5, '0')}-of-${String(worldSize).padStart(5, '0')}.safetensors`);
    expect(fs.readdirSync(path.dirname(prefix)).sort()).toEqual([...files, 'ema.safetensors.index.json'].sort());
    const index = JSON.parse(fs.readFileSync(`${prefix}.safetensors.index.json`, 'utf8'));
    expect(index.metadata.total_size).toBe(SIZES.reduce((a, b) => a + b) * 8); // float32 shadows + float32 backup
    expect(Object.keys(index.weight_map)).toHaveLength(2 * SIZES.length);
    expect(index.weight_map['shadow.fc.w']).toBe(files[sharded.findIndex((e) => e.shardInfo!.indices.includes(4))]);
    saved.set(worldSize, { prefix, reference });
  });

  for (const from of [1, 2, 3, 4, 7]) {
    test.each([1, 2, 5])(`saved from ${from} ranks, loaded into %i`, async (to) => {
      const { prefix, reference } = saved.get(from)!;
      const loaders = to === 1 ? [new ExponentialMovingAverage(replica(3), { decay: 0.5 })] : ranks(to, { decay: 0.5 }, replica(3));
      // The prefix, or the index path itself.
      await Promise.all(loaders.map((ema, i) => ema.load(i % 2 === 0 ? prefix : `${prefix}.safetensors.index.json`)));
      expectSameAsReference(loaders, reference, `${from} -> ${to}`);
    });
  }

  test.each([2, 5])('a single unsharded file loads into %i ranks, each taking its own parameters', async (to) => {
    const { reference } = trained(1);
    const file = path.join(freshFolder(), 'whole.safetensors');
    await reference.save(file);
    const loaders = ranks(to, { decay: 0.5 }, replica(3));
    for (const ema of loaders) await ema.load(file);
    expectSameAsReference(loaders, reference, `file -> ${to}`);
  });

  // Not with rounding 'stochastic': its random bits follow the element's position in the arena,
  // which differs between a rank's arena and the whole list's (README: "Sharded EMA").
  test('bfloat16 shadows: sharded equals unsharded, through a 3 -> 2 reshard', async () => {
    const options = { decay: 0.99, dtype: 'bfloat16' } as const;
    const { reference, sharded } = trained(3, options);
    expectSameAsReference(sharded, reference, 'bfloat16 in memory');
    const prefix = path.join(freshFolder(), 'bf16');
    for (const ema of sharded) await ema.save(prefix);
    const loaders = ranks(2, options, replica(3));
    for (const ema of loaders) await ema.load(prefix);
    expectSameAsReference(loaders, reference, 'bfloat16 3 -> 2');
  });

  test('save(path) of a sharded EMA takes a prefix: a path with an extension is refused, nothing written', async () => {
    const [ema] = ranks(2, { decay: 0.9 });
    const folder = freshFolder();
    await expectRejection(ema.save(path.join(folder, 'ema.safetensors')), {
      name: 'Error',
      message: ['a sharded EMA saves to a prefix without extension', 'ema-00001-of-00002.safetensors'],
      code: ERROR_CODES.INVALID_ARGUMENT,
    });
    expect(fs.readdirSync(folder)).toEqual([]);
  });
});

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

// As transformers reads sharded weights: the index's weight_map names each tensor's file, relative to
// the index's folder; each file is plain safetensors (read here with numpy only).
const PYTHON_READER = `
import json, os, struct, sys
import numpy as np
index_path = sys.argv[1]
index = json.load(open(index_path))
folder = os.path.dirname(index_path)
state = {}
for file in sorted(set(index["weight_map"].values())):
    with open(os.path.join(folder, file), "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__")
    for name, info in header.items():
        begin, end = info["data_offsets"]
        assert index["weight_map"][name] == file, name
        state[name] = np.frombuffer(data[begin:end], dtype="<f4").tolist()
keys = index["metadata"]["parameters"]
print(json.dumps({"total_size": index["metadata"]["total_size"], "shadows": [state["shadow." + k] for k in keys]}))
`;

(hasNumpy ? test : test.skip)(`Python reads the sharded checkpoint through the index, as transformers does${hasNumpy ? '' : ' [skipped: no python3 with numpy]'}`, async () => {
  const { reference, sharded } = trained(3);
  const prefix = path.join(freshFolder(), 'model');
  for (const ema of sharded) await ema.save(prefix);
  const result = spawnSync('python3', ['-c', PYTHON_READER, `${prefix}.safetensors.index.json`], { encoding: 'utf8', timeout: 60_000 });
  expect(result.stderr).toBe('');
  const read = JSON.parse(result.stdout);
  expect(read.total_size).toBe(SIZES.reduce((a, b) => a + b) * 8);
  expect(read.shadows).toEqual(reference.stateDict().shadowParams.map((s) => Array.from(s)));
});

describe('a damaged or mixed sharded checkpoint is refused, naming the file, and nothing changes', () => {
  async function savedThree(): Promise<{ prefix: string; index: string; folder: string }> {
    const { sharded } = trained(3);
    const folder = freshFolder();
    const prefix = path.join(folder, 'ema');
    for (const ema of sharded) await ema.save(prefix);
    return { prefix, index: `${prefix}.safetensors.index.json`, folder };
  }

  async function expectLoadRefused(source: string, message: (string | RegExp)[]): Promise<void> {
    const ema = new ExponentialMovingAverage(replica(3), { decay: 0.5 });
    ema.update(replica(4));
    const before = ema.stateDict();
    await expectRejection(ema.load(source), { name: 'Error', message, code: ERROR_CODES.INVALID_CHECKPOINT });
    const after = ema.stateDict();
    expect(after.numUpdates).toBe(before.numUpdates);
    after.shadowParams.forEach((s, i) => expectBitsEqual(s, before.shadowParams[i], `shadow ${i}`));
    expect(after.collectedParams).toBeNull();
  }

  const editIndex = (index: string, edit: (json: { metadata: Record<string, unknown>; weight_map: Record<string, string> }) => void): void => {
    const json = JSON.parse(fs.readFileSync(index, 'utf8'));
    edit(json);
    fs.writeFileSync(index, JSON.stringify(json));
  };

  test('a missing shard', async () => {
    const { prefix, folder } = await savedThree();
    fs.unlinkSync(path.join(folder, 'ema-00002-of-00003.safetensors'));
    await expectLoadRefused(prefix, ["shard '", 'ema-00002-of-00003.safetensors', 'named by the index does not exist', 'ema.safetensors.index.json']);
  });

  test('a shard from another run (different num_updates), named as the culprit', async () => {
    const { prefix, folder } = await savedThree();
    const [, other] = ranks(3, { decay: 0.9 }); // rank 1 of a run with no updates
    other.store(replica(9));
    await other.save(path.join(folder, 'other'));
    fs.renameSync(path.join(folder, 'other-00002-of-00003.safetensors'), path.join(folder, 'ema-00002-of-00003.safetensors'));
    await expectLoadRefused(prefix, [`Cannot read '${path.join(folder, 'ema-00002-of-00003.safetensors')}'`, 'metadata num_updates is "0" but the index', 'says "4"', 'another step, or by another run']);
  });

  test('an index naming a file that does not exist', async () => {
    const { index } = await savedThree();
    editIndex(index, (json) => {
      json.weight_map['shadow.fc.w'] = 'gone.safetensors';
      json.weight_map['collected.fc.w'] = 'gone.safetensors';
    });
    await expectLoadRefused(index, ['gone.safetensors', 'does not exist']);
  });

  test.each(['../x.safetensors', '/etc/passwd', 'a/../../x', 'C:\\x', './ema-00001-of-00003.safetensors'])('an index naming %j, outside its folder', async (file) => {
    const { index } = await savedThree();
    editIndex(index, (json) => {
      json.weight_map['shadow.embed'] = file;
      json.weight_map['collected.embed'] = file;
    });
    await expectLoadRefused(index, [`Cannot read '${index}'`, JSON.stringify(file), "not a plain path inside the index's folder"]);
  });

  test('a corrupted shard: its checksum fails, naming the shard', async () => {
    const { prefix, folder } = await savedThree();
    const shard = path.join(folder, 'ema-00003-of-00003.safetensors');
    const bytes = fs.readFileSync(shard);
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(shard, bytes);
    await expectLoadRefused(prefix, [`Cannot read '${shard}'`, 'does not match its data']);
  });

  test('an index whose scalars were edited, a shard moved to another file, a duplicate key', async () => {
    let { index } = await savedThree();
    editIndex(index, (json) => ((json.metadata.checkpoint as Record<string, string>).decay = '0.5'));
    await expectLoadRefused(index, ['metadata decay is "0.9" but the index']);
    ({ index } = await savedThree());
    editIndex(index, (json) => {
      json.weight_map['shadow.1'] = 'ema-00003-of-00003.safetensors'; // parameter 1 is rank 0's
      json.weight_map['collected.1'] = 'ema-00003-of-00003.safetensors';
    });
    await expectLoadRefused(index, ["Cannot read '", 'ema-00003-of-00003.safetensors', 'Invalid model-ema checkpoint']);
    ({ index } = await savedThree());
    fs.writeFileSync(index, fs.readFileSync(index, 'utf8').replace('"weight_map": {', '"weight_map": {"shadow.embed": "x",'));
    await expectLoadRefused(index, ['key "shadow.embed" appears twice']);
  });

  test('an EMA over other parameters: the counts, or the names by position', async () => {
    const { index } = await savedThree();
    const fewer = new ExponentialMovingAverage(replica(0).slice(1), { decay: 0.5 });
    await expectRejection(fewer.load(index), { name: 'Error', message: ['the checkpoint has 9 parameters but this EMA has 8'], code: ERROR_CODES.INVALID_CHECKPOINT });
    const renamed = replica(0).map((p, i) => (i === 0 ? { name: 'other', value: valuesOf([p])[0] } : p));
    const ema = new ExponentialMovingAverage(renamed, { decay: 0.5 });
    await expectRejection(ema.load(index), { name: 'Error', message: ['parameter 0 is "embed" in the checkpoint but "other" in this EMA', 'matchNames: false'], code: ERROR_CODES.INVALID_CHECKPOINT });
    await ema.load(index, { matchNames: false });
    expect(ema.numUpdates).toBe(4);
  });
});
