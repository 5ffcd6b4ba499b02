// model-ema: an exponential moving average of model parameters, fused in native code.
export { ExponentialMovingAverage } from './ema';
export type { EmaOptions, LoadOptions, ToOptions } from './ema';
export { AveragedParametersScope } from './scope';
export type { EmaStateDict } from './state_dict';
export type { Device } from './device';
export type { NamedParameter, Parameter, ParamArray, ParameterKind } from './parameters';
export { registerParameterKind } from './parameters';
export type { StorageDType, CpuInfo, BackendInfo } from './native';

import { binding } from './native';
import type { BackendInfo, CpuInfo } from './native';

/** Backends this build has ('cpu', 'cuda'), whether each is usable here, and why not. */
export function backends(): BackendInfo[] {
  return binding.backends();
}

/** The CPU kernels in use: instruction set, threads, and the size from which updates go parallel. */
export function cpuInfo(): CpuInfo {
  return binding.cpuInfo();
}
