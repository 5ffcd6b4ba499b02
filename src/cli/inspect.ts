// `model-ema inspect <file>`: what a checkpoint holds, after the same validation load() does
// (layout, metadata digest, tensor set, dtypes, per-tensor SHA-256). The file names its own
// parameters, so the expected names and sizes are taken from the file itself; everything else is
// checked by the checkpoint decoder, and any fault is its error, naming the field or tensor.
import { stat } from 'node:fs/promises';
import { decodeCheckpoint } from '../checkpoint/checkpoint_decode';
import { COLLECTED_PREFIX, parameterKeys, SHADOW_PREFIX } from '../checkpoint/checkpoint_format';
import { namingPathOnError } from '../checkpoint/checkpoint_file';
import { readSafetensorsFile, type ParsedSafetensors } from '../checkpoint/safetensors';

export interface InspectedParameter {
  index: number;
  name: string | null;
  /** The shadow tensor's name in the file. */
  tensor: string;
  shape: number[];
  elements: number;
}

export interface CheckpointReport {
  path: string;
  bytes: number;
  formatVersion: string;
  dtype: string;
  /** The store() backup's dtype, or null when the file has none. */
  collectedDType: string | null;
  decay: number;
  numUpdates: number | null;
  /** Null in a format version 1 file (written before schedules). */
  schedule: unknown;
  step: number | null;
  samples: number | null;
  seconds: number | null;
  /** What the non-finite guard skipped (zeros in a file from before it, format version 1 or 2). */
  nonFiniteStats: { skippedUpdates: number; skippedElements: number };
  parameters: InspectedParameter[];
  /** How many tensors' checksums were verified. */
  verifiedTensors: number;
}

/** The names the file claims (validated again by the decoder), or [] when they are not a JSON list. */
function claimedNames(parsed: ParsedSafetensors): (string | null)[] {
  try {
    const names: unknown = JSON.parse(parsed.metadata.names ?? '');
    return Array.isArray(names) && names.every((n) => n === null || typeof n === 'string') ? names : [];
  } catch {
    return [];
  }
}

/** Reads and validates a checkpoint; throws an Error naming the path and the fault. */
export async function inspectCheckpoint(path: string): Promise<CheckpointReport> {
  return namingPathOnError(path, async () => {
    const { size } = await stat(path);
    const parsed = await readSafetensorsFile(path);
    const names = claimedNames(parsed);
    const keys = parameterKeys(names);
    const shapeOf = (tensor: string) => parsed.tensors.find((t) => t.name === tensor)?.shape;
    // A missing tensor gets size -1: the decoder then reports it missing, by name.
    const sizes = keys.map((k) => shapeOf(`${SHADOW_PREFIX}${k}`)?.reduce((n, d) => n * d, 1) ?? -1);
    const decoded = decodeCheckpoint(parsed, { names, sizes, matchNames: true });
    const parameters = keys.map((key, index) => {
      const tensor = `${SHADOW_PREFIX}${key}`;
      return { index, name: names[index], tensor, shape: shapeOf(tensor)!, elements: sizes[index] };
    });
    const verifiedTensors = parsed.tensors.filter((t) => t.name.startsWith(SHADOW_PREFIX) || t.name.startsWith(COLLECTED_PREFIX)).length;
    return {
      path,
      bytes: size,
      formatVersion: parsed.metadata.format_version,
      dtype: decoded.dtype,
      collectedDType: decoded.collectedDType,
      decay: decoded.decay,
      numUpdates: decoded.numUpdates,
      schedule: decoded.progress?.schedule ?? null,
      step: decoded.progress?.step ?? null,
      samples: decoded.progress?.samples ?? null,
      seconds: decoded.progress?.seconds ?? null,
      nonFiniteStats: decoded.nonFiniteStats,
      parameters,
      verifiedTensors,
    };
  });
}
