// EmaTracks' options: the tracks (a name each, with its own decay and schedule) and the options all
// tracks share (storage, device, per-element options), checked before any track is made, each error
// naming the option by its path (`tracks.fast.decay`).
import { checkUnitInterval, expectedTypeError, invalidArgument, refuseUnknownOptions } from '../errors';
import type { EmaOptions } from '../options';
import { parseSchedule, type Schedule } from '../schedule_options';

export interface TrackOptions {
  /** Upper bound of the track's schedule, as ExponentialMovingAverage's decay. */
  decay: number;
  /** Default: 'torch_ema' (warm-up), as ExponentialMovingAverage without a schedule. */
  schedule?: Schedule;
}

export interface EmaTracksOptions extends Pick<EmaOptions, 'dtype' | 'device' | 'nonFinite' | 'rounding' | 'seed'> {
  /** One entry per track, in the order tracks are listed; at least one. */
  tracks: Record<string, TrackOptions>;
}

const SHARED_KEYS = ['dtype', 'device', 'nonFinite', 'rounding', 'seed'] as const satisfies readonly (keyof EmaTracksOptions)[];
const TRACK_KEYS = ['decay', 'schedule'] as const satisfies readonly (keyof TrackOptions)[];

export interface ParsedTracksOptions {
  /** Each track's name and the options of its ExponentialMovingAverage (shared ones included). */
  tracks: { name: string; options: EmaOptions }[];
}

export function parseTracksOptions(options: unknown): ParsedTracksOptions {
  if (typeof options !== 'object' || options === null) throw expectedTypeError('an options object with tracks', 'options', options);
  refuseUnknownOptions(options, ['tracks', ...SHARED_KEYS], 'options');
  const o = options as Partial<Record<keyof EmaTracksOptions, unknown>>;
  if (typeof o.tracks !== 'object' || o.tracks === null || Array.isArray(o.tracks)) {
    throw expectedTypeError('an object of tracks ({ name: { decay, schedule? } })', 'tracks', o.tracks);
  }
  const names = Object.keys(o.tracks);
  if (names.length === 0) throw invalidArgument('Expected at least one track in tracks but received {}', RangeError);
  const shared: Partial<EmaOptions> = {};
  for (const key of SHARED_KEYS) if (o[key] !== undefined) Object.assign(shared, { [key]: o[key] });
  const tracks = names.map((name) => {
    const where = `tracks[${JSON.stringify(name)}]`;
    const t: unknown = (o.tracks as Record<string, unknown>)[name];
    if (typeof t !== 'object' || t === null) throw expectedTypeError('an object { decay, schedule? }', where, t);
    refuseUnknownOptions(t, TRACK_KEYS, where);
    const track = t as Partial<Record<keyof TrackOptions, unknown>>;
    const decay = checkUnitInterval(track.decay, `${where}.decay`);
    if (track.schedule !== undefined) parseSchedule(track.schedule, `${where}.schedule`);
    const own: EmaOptions = { ...shared, decay };
    if (track.schedule !== undefined) own.schedule = track.schedule as Schedule;
    return { name, options: own };
  });
  return { tracks };
}
