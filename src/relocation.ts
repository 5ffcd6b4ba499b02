// to(): the shadows converted to another storage dtype and/or moved to another device, with the
// store() backup (which keeps its dtype: it holds the raw weights exactly) moved along.
import { type EmaArenas, type TrackArena } from './arenas';
import type { ShadowArena, StorageDType } from './native';

/**
 * `arena` as `dtype` on `device` (null: host memory): a new arena, or `arena` itself when neither
 * changes. Converts where the arena is, then moves; a failure disposes whatever it made.
 */
export function moveArena(arena: ShadowArena, dtype: StorageDType, device: number | null): ShadowArena {
  const cast = arena.dtype === dtype ? arena : arena.cast(dtype);
  if (cast.device === device) return cast;
  try {
    return cast.toDevice(device);
  } finally {
    if (cast !== arena) cast.dispose();
  }
}

/** Moves the EMA's arenas all-or-nothing: both new ones are built before either is swapped in. */
export function relocateArenas(arenas: EmaArenas, dtype: StorageDType, device: number | null): void {
  arenas.replace(({ shadows, backup }, track: TrackArena) => ({
    shadows: track(moveArena(shadows, dtype, device)),
    backup: backup && track(moveArena(backup, backup.dtype, device)),
  }));
}
