// Arena helpers: native arenas made so that none leaks when a step fails, the EMA's own arenas (the
// shadows and the store() backup) replaced all-or-nothing by one swap-or-dispose routine, and the
// one call of the native update.
import { types } from 'node:util';
import { codedError } from './errors';
import { newShadowArena, type ShadowArena, type StorageDType } from './native';
import type { ParamArray } from './parameter_kinds';
import type { UpdateDescription } from './schedule';

/**
 * The one call of the native update, on the JS thread or (async) on a libuv thread: every shadow
 * s = s - (1 - d) * (s - p) in one fused pass; returns the count of non-finite parameter elements
 * the pass saw (0 with nonFinite 'propagate'). Every path to the kernels' update goes through here,
 * so a change of the native signature is a change of this function only.
 */
export function updateShadows(arena: ShadowArena, params: readonly ParamArray[], update: UpdateDescription, async: true, inPlace?: boolean): Promise<number>;
export function updateShadows(arena: ShadowArena, params: readonly ParamArray[], update: UpdateDescription, async: false): number;
export function updateShadows(arena: ShadowArena, params: readonly ParamArray[], update: UpdateDescription, async: boolean, inPlace = false): Promise<number> | number {
  const description = packDescription(update);
  return async ? arena.updateAsync(params, description, inPlace) : arena.update(params, description);
}

// The description packed into one reused Float64Array (binding.d.ts's PackedDescription): the addon
// reads it with one Node-API call instead of a property lookup per field, a measurable share of a
// small model's update. The addon reads it before the call returns, so one array serves every call.
const packed = new Float64Array(5);
const NON_FINITE_CODES = { propagate: 0, 'skip-update': 1, 'skip-element': 2 } as const;
const ROUNDING_CODES = { nearest: 0, stochastic: 1 } as const;

function packDescription(update: UpdateDescription): Float64Array {
  packed[0] = update.decay;
  packed[1] = NON_FINITE_CODES[update.nonFinite ?? 'propagate'];
  packed[2] = ROUNDING_CODES[update.rounding ?? 'nearest'];
  packed[3] = update.seed ?? 0;
  packed[4] = update.updateIndex ?? 0;
  return packed;
}

/** A backup must give the raw weights back bit for bit: float64 parameters need a float64 backup. */
export function backupDType(arrays: readonly ParamArray[], storage: StorageDType): StorageDType {
  return storage === 'float64' || arrays.some((a) => types.isFloat64Array(a)) ? 'float64' : 'float32';
}

/** A new arena, filled by `fill`; disposed at once if filling fails, rather than left to the GC. */
export function newArena(dtype: StorageDType, sizes: readonly number[], device: number | null, fill: (arena: ShadowArena) => void): ShadowArena {
  const arena = newShadowArena(dtype, sizes, device);
  try {
    fill(arena);
  } catch (error) {
    arena.dispose();
    throw error;
  }
  return arena;
}

/**
 * A backup of `arrays` (the parameters' values), in a dtype that holds them exactly. `device`: where
 * it lives (null: host memory). store()'s backup lives with the shadows; a scope's short-lived backup
 * stays in host memory, next to the parameters it restores.
 */
export function backupOf(arrays: readonly ParamArray[], storage: StorageDType, sizes: readonly number[], device: number | null = null): ShadowArena {
  return newArena(backupDType(arrays, storage), sizes, device, (arena) => arena.copyFrom(arrays));
}

/** A new arena holding raw little-endian tensors of `dtype`, converted to `target` if it differs. */
export function arenaFromBytes(dtype: StorageDType, tensors: readonly Uint8Array[], sizes: readonly number[], target: StorageDType, device: number | null): ShadowArena {
  const arena = newArena(dtype, sizes, device, (a) => tensors.forEach((bytes, i) => a.writeBytes(i, bytes)));
  if (dtype === target) return arena;
  try {
    return arena.cast(target);
  } finally {
    arena.dispose();
  }
}

/** The arenas an EMA holds while it is open. */
export interface CurrentArenas {
  readonly shadows: ShadowArena;
  /** store()'s backup ("collected" in torch_ema and in state dicts), or null. */
  readonly backup: ShadowArena | null;
}

/** What a replacement changes: a field left out keeps its arena; `backup: null` drops the backup. */
export interface ArenaChange {
  shadows?: ShadowArena;
  backup?: ShadowArena | null;
}

/** Registers an arena just made, so that a failure later in the same replacement disposes it. */
export type TrackArena = <A extends ShadowArena | null>(arena: A) => A;

/** Which arena save() copies. */
export type ArenaRole = 'shadows' | 'backup';
const NO_ROLES: ReadonlySet<ArenaRole> = new Set();

/** The shadows and the store() backup of one EMA, and the spare arenas save() copies them into. */
export class EmaArenas {
  #shadows: ShadowArena | null;
  #backup: ShadowArena | null = null;
  // Kept from one save() to the next: fresh pages cost far more than the copy (0.35 s for
  // ResNet-50's 100 MB on the CI VM, against about 10 ms for the copy), and save() copies at its call.
  readonly #spares = new Map<ArenaRole, ShadowArena>();

  constructor(shadows: ShadowArena) {
    this.#shadows = shadows;
  }

  /** The arenas, or null once disposed. */
  get current(): CurrentArenas | null {
    return this.#shadows === null ? null : { shadows: this.#shadows, backup: this.#backup };
  }

  /**
   * Swap-or-dispose, the one way the arenas change. `build` makes the replacements from the current
   * arenas, passing each new arena through `track` as soon as it exists, and returns what changes
   * (it may also write into the current arenas, after every check that can fail). If `build`
   * throws, every arena it tracked is disposed and nothing changes; otherwise the new arenas are
   * swapped in and the ones they replace disposed (those of `spareRoles` kept as spares, see takeSpare).
   */
  replace(build: (current: CurrentArenas, track: TrackArena) => ArenaChange, spareRoles: ReadonlySet<ArenaRole> = NO_ROLES): void {
    const current = this.current;
    if (current === null) throw codedError('DISPOSED', 'EmaArenas.replace(): the arenas were disposed');
    const kept = (arena: ShadowArena): boolean => arena === current.shadows || arena === current.backup;
    const made: ShadowArena[] = [];
    const track: TrackArena = (arena) => {
      if (arena !== null && !kept(arena) && !made.includes(arena)) made.push(arena);
      return arena;
    };
    let change: ArenaChange;
    try {
      change = build(current, track);
    } catch (error) {
      for (const arena of made) arena.dispose();
      throw error;
    }
    const shadows = change.shadows ?? current.shadows;
    const backup = change.backup === undefined ? current.backup : change.backup;
    for (const [role, old] of [['shadows', current.shadows], ['backup', current.backup]] as const) {
      if (old === null || old === shadows || old === backup) continue;
      if (spareRoles.has(role)) this.reuse(role, old); // a spare when none is held, else disposed
      else old.dispose();
    }
    this.#shadows = shadows;
    this.#backup = backup;
  }

  /** A copy of the current shadows or backup (null when there is no backup), in a spare arena when one fits. */
  copy(role: ArenaRole): ShadowArena | null {
    const source = role === 'shadows' ? this.#shadows : this.#backup;
    if (source === null) return null;
    const spare = this.#spares.get(role);
    this.#spares.delete(role);
    if (spare !== undefined && spare.dtype === source.dtype && spare.device === source.device) {
      try {
        spare.copyFromArena(source);
        return spare;
      } catch (error) {
        spare.dispose();
        throw error;
      }
    }
    spare?.dispose();
    return source.cast(source.dtype);
  }

  /**
   * The spare of `role` (contents undefined), taken out when it has `dtype` and is on `device`:
   * load() streams a file into it rather than into fresh pages, and on success hands the arena it
   * replaced back as the spare (replace's `spareRoles`), so the memory held stays the same.
   */
  takeSpare(role: ArenaRole, dtype: StorageDType, device: number | null): ShadowArena | null {
    const spare = this.#spares.get(role);
    if (spare === undefined || spare.dtype !== dtype || spare.device !== device) return null;
    this.#spares.delete(role);
    return spare;
  }

  /** Takes a copy back as the spare for the next copy(); frees it when a spare is kept already or the arenas are disposed. */
  reuse(role: ArenaRole, copy: ShadowArena): void {
    if (this.#shadows === null || this.#spares.has(role)) copy.dispose();
    else this.#spares.set(role, copy);
  }

  /** Frees every arena now; later `current` is null. Repeatable. */
  dispose(): void {
    this.#shadows?.dispose();
    this.#backup?.dispose();
    for (const spare of this.#spares.values()) spare.dispose();
    this.#spares.clear();
    this.#shadows = null;
    this.#backup = null;
  }
}
