// The exact surface of the native addon (build/Release/model_ema.node). src/native.ts is the only
// file that loads it, typed by this declaration; test/binding.test.ts checks that the loaded binary
// exports exactly these keys. Users never see these objects: src/ keeps them in #private fields.

/** Storage dtype of an arena. */
export type StorageDType = 'float32' | 'float64' | 'float16' | 'bfloat16';

/** Parameter buffers the kernels read and write directly. */
export type ParamArray = Float32Array | Float64Array;

/**
 * One contiguous native block of tensors in one storage dtype (the shadows of an EMA, or a backup
 * of parameter values). Every method that takes `params` needs one Float32Array/Float64Array per
 * tensor with exactly the tensor's element count, and checks all of them before changing anything.
 * While an updateAsync() is running, every other method throws.
 */
export declare class ShadowArena {
  /** A zero-filled arena; `sizes` are element counts per tensor. */
  constructor(dtype: StorageDType, sizes: readonly number[]);
  readonly dtype: StorageDType;
  /** Element count of each tensor (a fresh array). */
  readonly sizes: number[];
  /** Total elements. */
  readonly numel: number;
  /** Bytes of native memory held by the arena itself (tensors are padded to 64 bytes). */
  readonly byteLength: number;
  /** Threads one call may use, 1 to cpuInfo().threads. */
  threads: number;
  readonly disposed: boolean;
  /** True while an updateAsync() is running. */
  readonly busy: boolean;
  /** shadow = shadow - (1 - decay) * (shadow - param), every tensor in one pass. */
  update(params: readonly ParamArray[], decay: number): void;
  /** update() on a libuv thread, from a snapshot of `params` taken before it returns. */
  updateAsync(params: readonly ParamArray[], decay: number): Promise<void>;
  /** arena = params (rounded to the storage dtype). */
  copyFrom(params: readonly ParamArray[]): void;
  /** params = arena (converted to each parameter's type). */
  copyTo(params: readonly ParamArray[]): void;
  /** A copy of one tensor: Float64Array for float64 storage, Float32Array otherwise (exact). */
  read(index: number): ParamArray;
  /** A copy of one tensor's raw little-endian storage bytes. */
  readBytes(index: number): Uint8Array;
  /** Overwrites one tensor with raw storage bytes (byteLength = size x dtype size). */
  writeBytes(index: number, bytes: Uint8Array): void;
  /** A new arena holding these values converted to `dtype` (round to nearest even). */
  cast(dtype: StorageDType): ShadowArena;
  /** How many stored values are NaN or infinite. */
  countNonFinite(): number;
  /** Frees the native memory now; every later call but dispose() throws. */
  dispose(): void;
}

export interface CpuInfo {
  /** The instruction set the kernels run with: 'avx512' | 'avx2' | 'baseline'. */
  isa: string;
  /** Threads in this instance's pool, the calling thread included. */
  threads: number;
  /** Arenas with fewer elements than this stay on the calling thread. */
  parallelThreshold: number;
}

export interface BackendInfo {
  name: 'cpu' | 'cuda';
  /** Built into this binary. */
  compiled: boolean;
  /** Usable now on this machine. */
  available: boolean;
  /** Why it is not available. */
  reason?: string;
  isa?: string;
  threads?: number;
}

export declare function cpuInfo(): CpuInfo;
export declare function backends(): BackendInfo[];
/** package.json's version at build time. */
export declare const version: string;
