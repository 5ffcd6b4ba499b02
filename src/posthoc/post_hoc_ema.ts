// PostHocEma (EDM2, Karras et al. 2024): power-function EMAs of the parameters, one per sigmaRel,
// updated in one pass (an EmaTracks), plus snapshots of every track written into a folder every
// N steps or samples. After training, synthesize() reconstructs from those snapshots the EMA of any
// sigmaRel (snapshot_files.ts, profile.ts, synthesize.ts). A snapshot is copied from the shadows
// when it falls due (inside update()) and written in the background, in order; a failed write is
// reported by the next update(), flush() or save().
import { readdirSync } from 'node:fs';
import { parameterKeys } from '../checkpoint/checkpoint_format';
import { codedError, expectedRangeError, expectedTypeError, invalidArgument, isNonNegativeInteger, refuseUnknownOptions, describe } from '../errors';
import type { EmaOptions, LoadOptions, SaveOptions } from '../options';
import type { Parameter } from '../parameters';
import { sigmaRelToGamma, type AsyncProgress, type Progress } from '../schedule_options';
import { EmaTracks, SAVE_AFTER, UPDATE_WITH_HOOK, type EmaTrack } from '../tracks/ema_tracks';
import type { EmaStateDict } from '../state_dict';
import { prepareFolder } from '../tracks/tracks_checkpoint';
import { listPostHocSnapshots, writePostHocSnapshot, type PostHocSnapshot } from './snapshot_files';
import { isSnapshotCandidate, type SnapshotDType, type SnapshotUnit } from './snapshot_format';
import { synthesize, synthesizeInto } from './synthesize';

export interface PostHocEmaOptions extends Pick<EmaOptions, 'dtype' | 'device' | 'nonFinite' | 'rounding' | 'seed'> {
  /** One power-function track per value, each in (0, 0.2887); EDM2 uses [0.05, 0.10]. */
  sigmaRels: readonly number[];
  /** A snapshot of every track each time progress passes a multiple of this many steps or samples. */
  snapshotEvery: { steps: number } | { samples: number };
  /** The snapshot folder (created if missing); also where save() and load() keep the tracks by default. */
  dir: string;
  /** Storage of the snapshot files. Default 'float16'. */
  snapshotDType?: SnapshotDType;
}

const OPTION_KEYS = ['sigmaRels', 'snapshotEvery', 'dir', 'snapshotDType', 'dtype', 'device', 'nonFinite', 'rounding', 'seed'] as const;

interface ParsedPostHocOptions {
  sigmaRels: number[];
  unit: SnapshotUnit;
  every: number;
  dir: string;
  snapshotDType: SnapshotDType;
  shared: Pick<EmaOptions, 'dtype' | 'device' | 'nonFinite' | 'rounding' | 'seed'>;
}

function parseOptions(options: unknown): ParsedPostHocOptions {
  if (typeof options !== 'object' || options === null) throw expectedTypeError('an options object with sigmaRels, snapshotEvery and dir', 'options', options);
  refuseUnknownOptions(options, OPTION_KEYS, 'options');
  const o = options as Partial<Record<(typeof OPTION_KEYS)[number], unknown>>;
  if (!Array.isArray(o.sigmaRels) || o.sigmaRels.length < 2) throw expectedTypeError('an array of at least two sigmaRel values (synthesis needs two profiles)', 'sigmaRels', o.sigmaRels);
  const sigmaRels = o.sigmaRels.map((s: unknown, i: number) => {
    if (typeof s !== 'number') throw expectedTypeError('a number in (0, 0.2887)', `sigmaRels[${i}]`, s);
    sigmaRelToGamma(s); // RangeError outside (0, 0.2887)
    return s;
  });
  if (new Set(sigmaRels).size !== sigmaRels.length) throw invalidArgument(`Expected distinct values for sigmaRels but received [${sigmaRels.join(', ')}]`);
  const every = o.snapshotEvery as Record<string, unknown> | undefined;
  if (typeof every !== 'object' || every === null) throw expectedTypeError('{ steps } or { samples }', 'snapshotEvery', every);
  refuseUnknownOptions(every, ['steps', 'samples'], 'snapshotEvery');
  const units = Object.keys(every) as SnapshotUnit[];
  if (units.length !== 1) throw expectedTypeError('{ steps } or { samples } (exactly one)', 'snapshotEvery', every);
  const n = every[units[0]];
  if (!isNonNegativeInteger(n) || n === 0) throw expectedRangeError('a positive integer', `snapshotEvery.${units[0]}`, describe(n));
  if (typeof o.dir !== 'string' || o.dir === '') throw expectedTypeError('a folder path (a non-empty string)', 'dir', o.dir);
  const snapshotDType = o.snapshotDType ?? 'float16';
  if (snapshotDType !== 'float16' && snapshotDType !== 'bfloat16' && snapshotDType !== 'float32') {
    throw expectedTypeError("'float16', 'bfloat16' or 'float32'", 'snapshotDType', snapshotDType);
  }
  const shared: ParsedPostHocOptions['shared'] = {};
  for (const key of ['dtype', 'device', 'nonFinite', 'rounding', 'seed'] as const) if (o[key] !== undefined) Object.assign(shared, { [key]: o[key] });
  return { sigmaRels, unit: units[0], every: n, dir: o.dir, snapshotDType, shared };
}

function countSnapshotFiles(dir: string): number {
  try {
    return readdirSync(dir).filter(isSnapshotCandidate).length;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw codedError('INVALID_ARGUMENT', `Cannot use '${dir}' as the snapshot folder: ${(error as Error).message}`, { cause: error });
  }
}

/** The name of the track of `sigmaRel` (track(sigmaRel) finds it). */
function trackName(sigmaRel: number): string {
  return `sigmaRel=${sigmaRel}`;
}

export class PostHocEma implements Disposable {
  /** The EMA of any sigmaRel at a snapshot time (default the last), from a snapshot folder: EDM2's Algorithm 3. */
  static readonly synthesize = synthesize;
  /** synthesize(), written into an ExponentialMovingAverage, parameters, or a safetensors path. */
  static readonly synthesizeInto = synthesizeInto;

  readonly #tracks: EmaTracks;
  readonly #options: ParsedPostHocOptions;
  #writes: Promise<void> = Promise.resolve();
  #writeError: unknown = null;
  // Snapshot files an earlier run left in dir: a fresh start would write over their times with
  // another run's averages, so the first update refuses until load() resumed the tracks.
  #earlierSnapshots: number;

  /**
   * @param parameters as for ExponentialMovingAverage (read once; held weakly).
   * @param options `{ sigmaRels, snapshotEvery: { steps } | { samples }, dir, snapshotDType = 'float16', dtype?, device?, nonFinite?, rounding?, seed? }`.
   *   Snapshots already in `dir` from an earlier run are kept; `await load()` resumes the tracks.
   */
  constructor(parameters: Iterable<Parameter>, options: PostHocEmaOptions) {
    this.#options = parseOptions(options);
    const { sigmaRels, unit, shared } = this.#options;
    const tracks = Object.fromEntries(
      sigmaRels.map((sigmaRel) => [trackName(sigmaRel), { decay: 1, schedule: { kind: 'power-function' as const, sigmaRel, unit } }]),
    );
    this.#tracks = new EmaTracks(parameters, { tracks, ...shared });
    this.#earlierSnapshots = countSnapshotFiles(this.#options.dir);
  }

  get sigmaRels(): readonly number[] { return this.#options.sigmaRels; }
  get dir(): string { return this.#options.dir; }
  /** Progress so far in the snapshots' unit (steps or samples). */
  get t(): number { return this.#progress(); }
  get busy(): boolean { return this.#tracks.busy; }
  get disposed(): boolean { return this.#tracks.disposed; }

  /** The read side of the track of `sigmaRel` (one of options.sigmaRels). */
  track(sigmaRel: number): EmaTrack {
    if (!this.#options.sigmaRels.includes(sigmaRel)) {
      throw invalidArgument(`Expected one of ${this.#options.sigmaRels.join(', ')} for sigmaRel but received ${describe(sigmaRel)}`, RangeError);
    }
    return this.#tracks.track(trackName(sigmaRel));
  }

  /** Every track's update in one pass; then the snapshots, when progress passed a multiple of snapshotEvery. */
  update(parameters?: Iterable<Parameter>, progress?: Progress): void {
    this.#throwWriteError();
    this.#refuseFreshStart('update()');
    const before = this.#progress();
    this.#tracks.update(parameters, progress);
    this.#snapshotIfDue(before);
  }

  /** update() off the JS thread (see EmaTracks.updateAsync()). */
  async updateAsync(parameters?: Iterable<Parameter>, progress?: AsyncProgress): Promise<void> {
    this.#throwWriteError();
    this.#refuseFreshStart('updateAsync()');
    // Progress before and the snapshot after are taken in the update's own turn: with calls queued
    // (not awaited), the next update, or a save()'s copy, must not run in between.
    let before = 0;
    await this.#tracks[UPDATE_WITH_HOOK](parameters, progress, {
      before: () => void (before = this.#progress()),
      after: (states) => this.#snapshotIfDue(before, states),
    });
  }

  /** Writes a snapshot of every track now (at the current progress), whether due or not. */
  snapshot(): Promise<void> {
    try {
      if (this.#tracks.busy) throw codedError('BUSY', 'snapshot(): an updateAsync(), save() or load() is still running; await it first');
      this.#queueSnapshots();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.flush();
  }

  /** Resolves once every snapshot taken so far is written; rejects with the first write that failed. */
  async flush(): Promise<void> {
    await this.#writes;
    this.#throwWriteError();
  }

  /** The snapshots in dir (all runs), checked and sorted by (t, track). */
  snapshots(): Promise<PostHocSnapshot[]> {
    return listPostHocSnapshots(this.#options.dir);
  }

  /** Saves the tracks (full precision, for resuming) into `dir` (default: the snapshot folder), after pending snapshot writes. */
  save(dir = this.#options.dir, options?: SaveOptions): Promise<void> {
    // The tracks are copied now (as EmaTracks.save()), but their manifest is written only once the
    // snapshots taken so far are: a resume never skips a snapshot that failed.
    const written = this.flush();
    written.catch(() => undefined); // awaited by the save, or moot if it throws at once
    return this.#tracks[SAVE_AFTER](dir, options, written);
  }

  /** Resumes the tracks from save() (default: the snapshot folder). Later snapshots continue the same series. */
  async load(dir = this.#options.dir, options?: LoadOptions): Promise<void> {
    await this.#tracks.load(dir, options);
    this.#earlierSnapshots = 0;
  }

  /** Frees the native memory; snapshot writes already started still finish (await flush() first to see them). */
  dispose(): void {
    this.#tracks.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #refuseFreshStart(operation: string): void {
    if (this.#earlierSnapshots === 0 || this.#progress() > 0) return;
    throw codedError(
      'INVALID_ARGUMENT',
      `${operation}: '${this.#options.dir}' holds ${this.#earlierSnapshots} snapshot files of an earlier run; ` +
        'await load() to resume it (save() keeps the tracks there), or use an empty folder',
    );
  }

  #progress(): number {
    const first = this.#tracks.track(trackName(this.#options.sigmaRels[0]));
    return this.#options.unit === 'steps' ? first.step : first.samples;
  }

  #snapshotIfDue(before: number, states?: () => EmaStateDict[]): void {
    const every = this.#options.every;
    if (Math.floor(this.#progress() / every) > Math.floor(before / every)) this.#queueSnapshots(states);
  }

  // Copies every track's shadows now (float32) and writes them in the background, in call order.
  #queueSnapshots(states = (): EmaStateDict[] => this.#options.sigmaRels.map((s) => this.#tracks.track(trackName(s)).stateDict())): void {
    const { sigmaRels, unit, snapshotDType, dir } = this.#options;
    const t = this.#progress();
    if (t === 0) throw codedError('INVALID_ARGUMENT', 'snapshot(): no update yet (progress t is 0); a snapshot needs t > 0');
    const names = parameterKeys(this.#tracks.names);
    const all = states();
    const taken = sigmaRels.map((sigmaRel, track) => {
      const state = all[track];
      const values = state.shadowParams.map((v) => (v instanceof Float32Array ? v : Float32Array.from(v)));
      return { names, values, gamma: sigmaRelToGamma(sigmaRel), sigmaRel, t, unit, track, tracks: sigmaRels.length, dtype: snapshotDType };
    });
    this.#writes = this.#writes.then(async () => {
      await prepareFolder(dir).catch((error: unknown) => (this.#writeError ??= error));
      for (const snapshot of taken) {
        if (this.#writeError !== null) return;
        await writePostHocSnapshot(dir, snapshot).catch((error: unknown) => {
          this.#writeError = error;
        });
      }
    });
  }

  #throwWriteError(): void {
    const error = this.#writeError;
    if (error === null) return;
    this.#writeError = null;
    throw error;
  }
}
