// The exact surface of the native addon (build/Release/model_ema.node). src/native.ts is the only
// file that loads it, typed by this declaration; test/binding_surface.test.ts checks that the
// loaded binary exports exactly these keys. Users never see these objects: src/ keeps them in #private fields.

/** Storage dtype of an arena. */
export type StorageDType = 'float32' | 'float64' | 'float16' | 'bfloat16';

/** Parameter buffers the kernels read and write directly. */
export type ParamArray = Float32Array | Float64Array;

/**
 * What one update does to each element: a plain object, read once per call (before any parameter
 * is touched). Each field is checked natively like the facade's option of the same name. The
 * update methods also take it packed (PackedDescription).
 */
export interface UpdateDescription {
  /** In [0, 1]: shadow = shadow - (1 - decay) * (shadow - param); 0 copies exactly, 1 changes nothing. */
  decay: number;
  /**
   * Default 'propagate' (no check). 'skip-update': if any parameter element is NaN or infinite, no
   * shadow changes. 'skip-element': such an element keeps its shadow, the others update.
   */
  nonFinite?: 'propagate' | 'skip-update' | 'skip-element';
  /** Default 'nearest'. 'stochastic' rounds float16/bfloat16 shadows up or down with probability by distance (float32/float64 shadows ignore it). */
  rounding?: 'nearest' | 'stochastic';
  /** Stochastic rounding's seed, an integer in [0, 2^53 - 1] (default 0). */
  seed?: number;
  /** Stochastic rounding's update index, an integer in [0, 2^53 - 1] (default 0): with the seed and the element's position, all its random bits come from these. */
  updateIndex?: number;
}

/**
 * An UpdateDescription packed for speed: a Float64Array of exactly 5 values, [decay, nonFinite,
 * rounding, seed, updateIndex], nonFinite as 0 'propagate' / 1 'skip-update' / 2 'skip-element' and
 * rounding as 0 'nearest' / 1 'stochastic'. Read with one Node-API call (the object form costs a
 * property lookup per field, a measurable share of a small model's update); every value is checked
 * as in the object form, errors naming `description.<field>`.
 */
export type PackedDescription = Float64Array;

/**
 * One contiguous native block of tensors in one storage dtype (the shadows of an EMA, or a backup
 * of parameter values), in host memory or in one CUDA device's memory. Every method that takes
 * `params` needs one Float32Array/Float64Array per tensor with exactly the tensor's element count,
 * and checks all of them before changing anything; parameters are host memory for both kinds
 * (device arenas stream them through pinned staging buffers). While an updateAsync() is running,
 * every other method throws.
 */
export declare class ShadowArena {
  /**
   * A zero-filled arena; `sizes` are element counts per tensor. `device`: a CUDA device index, or
   * null/undefined for host memory. An unusable device (no CUDA in this build, no driver, no such
   * device) throws an Error naming the device and the reason.
   */
  constructor(dtype: StorageDType, sizes: readonly number[], device?: number | null);
  readonly dtype: StorageDType;
  /** The CUDA device index holding the arena, or null for host memory. */
  readonly device: number | null;
  /** Element count of each tensor (a fresh array). */
  readonly sizes: number[];
  /** Total elements. */
  readonly numel: number;
  /** Bytes of native (host or device) memory held by the arena itself (tensors start on 64-byte boundaries, large ones half a page into a page). */
  readonly byteLength: number;
  /** Threads one call may use, 1 to cpuInfo().threads. */
  threads: number;
  readonly disposed: boolean;
  /** True while an updateAsync() or a writeBytesAtAsync() is running. */
  readonly busy: boolean;
  /**
   * Each shadow updated from its parameter as `description` says, every tensor in one pass. Returns
   * how many parameter elements were NaN or infinite (always 0 with nonFinite 'propagate'); with
   * 'skip-update', a count above 0 means nothing changed.
   */
  update(params: readonly ParamArray[], description: UpdateDescription | PackedDescription): number;
  /**
   * update() on a libuv thread, from a snapshot of `params` taken before it returns; with `inPlace`,
   * from `params` themselves, which must all be views of SharedArrayBuffers (memory that cannot be
   * detached, transferred or shrunk while the worker reads it; TypeError otherwise). The arrays are
   * kept alive until the promise settles; the caller must not write them meanwhile.
   */
  updateAsync(params: readonly ParamArray[], description: UpdateDescription | PackedDescription, inPlace?: boolean): Promise<number>;
  /**
   * EmaTracks: update() of this arena and of `others` (same sizes, dtype and device; each once), from
   * one read of `params`; `descriptions[0]` is this arena's, `descriptions[i + 1]` that of `others[i]`.
   * Returns what update() would for each, in that order.
   */
  updateTracks(params: readonly ParamArray[], descriptions: readonly (UpdateDescription | PackedDescription)[], others: readonly ShadowArena[]): number[];
  /** updateTracks() as updateAsync() runs update(); every arena is busy until it settles. */
  updateTracksAsync(
    params: readonly ParamArray[],
    descriptions: readonly (UpdateDescription | PackedDescription)[],
    others: readonly ShadowArena[],
    inPlace?: boolean,
  ): Promise<number[]>;
  /** arena = params (rounded to the storage dtype). */
  copyFrom(params: readonly ParamArray[]): void;
  /** params = arena (converted to each parameter's type). */
  copyTo(params: readonly ParamArray[]): void;
  /** arena = source (same sizes; converted when the dtype differs, which needs the same device), into this arena's memory. */
  copyFromArena(source: ShadowArena): void;
  /** A copy of one tensor: Float64Array for float64 storage, Float32Array otherwise (exact). */
  read(index: number): ParamArray;
  /** A copy of one tensor's raw little-endian storage bytes. */
  readBytes(index: number): Uint8Array;
  /** Overwrites one tensor with raw storage bytes (byteLength = size x dtype size). */
  writeBytes(index: number, bytes: Uint8Array): void;
  /**
   * Part of one tensor's raw storage bytes into `out`: `out.byteLength` bytes (whole elements) from
   * element `elementOffset` on, within the tensor. Lets a caller stream a tensor through one buffer.
   */
  readBytesInto(index: number, elementOffset: number, out: Uint8Array): void;
  /** Overwrites part of one tensor with raw storage bytes: whole elements, from element `elementOffset` on, within the tensor. */
  writeBytesAt(index: number, elementOffset: number, bytes: Uint8Array): void;
  /**
   * writeBytesAt() on a libuv thread. `bytes` must be a view of a SharedArrayBuffer (memory that
   * cannot be detached while the copy reads it; TypeError otherwise), kept alive until the promise
   * settles; the caller must not write it meanwhile. Several may run at once; every other method
   * throws (busy) until all have settled.
   */
  writeBytesAtAsync(index: number, elementOffset: number, bytes: Uint8Array): Promise<void>;
  /** A new arena on the same device holding these values converted to `dtype` (round to nearest even). */
  cast(dtype: StorageDType): ShadowArena;
  /** A new arena with the same dtype and values on `device` (a CUDA device index, or null for host memory). */
  toDevice(device: number | null): ShadowArena;
  /** How many stored values are NaN or infinite. */
  countNonFinite(): number;
  /** Frees the native (and device) memory now; every later call but dispose() throws. */
  dispose(): void;
}

export interface CpuInfo {
  /** The instruction set the kernels run with: 'avx512bf16' | 'avx512' | 'avx2' | 'baseline'. */
  isa: string;
  /** Threads in this instance's pool, the calling thread included. */
  threads: number;
  /** Arenas with fewer elements than this stay on the calling thread. */
  parallelThreshold: number;
}

export interface CudaDeviceInfo {
  /** The index to pass as a ShadowArena's `device` ('cuda:<index>' in the facade). */
  index: number;
  name: string;
  /** Bytes of device memory. */
  totalMemory: number;
}

export interface BackendInfo {
  name: 'cpu' | 'cuda';
  /** Built into this binary. */
  compiled: boolean;
  /** Usable now on this machine. */
  available: boolean;
  /** Why it is not available (for CUDA: the CUDA error string, name and code). */
  reason?: string;
  /** cpu only. */
  isa?: string;
  /** cpu only. */
  threads?: number;
  /** cuda only, when available: the devices the driver reports. */
  devices?: CudaDeviceInfo[];
}

export interface DeviceMemoryInfo {
  /** Bytes free on the device now (all processes' allocations counted). */
  free: number;
  total: number;
}

export declare function cpuInfo(): CpuInfo;
export declare function backends(): BackendInfo[];
/**
 * cudaMemGetInfo for one CUDA device (creates the device's context if this process has none). An
 * unusable device throws an Error naming the device and the reason.
 */
export declare function cudaMemoryInfo(device: number): DeviceMemoryInfo;
/** package.json's version at build time. */
export declare const version: string;
