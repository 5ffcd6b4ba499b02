// model-ema: an exponential moving average of model parameters, fused in native code.
//
// The package entry: the public names, and the built-in parameter kinds. Typed arrays are core;
// tfjs variables are recognised by duck typing (src/tfjs/register.ts imports no tfjs), so that
// `new ExponentialMovingAverage(model.trainableWeights, ...)` needs nothing else imported.
import { TYPED_ARRAY_PRIORITY, typedArrayKind } from './kinds/typed_array';
import { binding } from './native';
import type { BackendInfo, CpuInfo } from './native';
import { registerParameterKind } from './parameter_kinds';
import { registerTfjsParameterKinds } from './tfjs/register';
import type { LayerVariableLike, TfVariableLike } from './tfjs/variables';

// The types of the kinds registered below join what a parameter can be (see ParameterTypes).
declare module './parameters' {
  interface ParameterTypes {
    tfVariable: TfVariableLike;
    layerVariable: LayerVariableLike;
  }
}

registerParameterKind(typedArrayKind, TYPED_ARRAY_PRIORITY);
registerTfjsParameterKinds();

export { ExponentialMovingAverage } from './ema';
export { EmaTrack, EmaTracks, type EmaTracksOptions, type EmaTracksStateDict, type TrackOptions } from './tracks/ema_tracks';
export { listPostHocSnapshots, PostHocEma, profileInnerProduct, solvePhemaCoefficients, synthesize, synthesizeInto, type PhemaCoefficients, type PostHocEmaOptions, type PostHocSnapshot, type ProfilePoint, type SnapshotDType, type SynthesisOptions, type SynthesisResult, type SynthesisTarget } from './posthoc';
export type { EmaOptions, LoadOptions, SaveOptions, ToOptions } from './options';
export type { ProgressListener, TransferProgress } from './checkpoint/checkpoint_format';
export type { ShardInfo, ShardOptions } from './shard/layout';
export type { AsyncProgress, HalfLifeSchedule, InverseGammaSchedule, ParsedSchedule, PowerFunctionSchedule, Progress, Schedule } from './schedule_options';
export { sigmaRelToGamma } from './schedule_options';
export { AveragedParametersScope } from './scope';
export { PublishedWeightsReader, type PublishedWeights } from './publish/reader';
export type { PublishedWeightsHandle } from './publish/region';
export type { EmaStateDict } from './state_dict';
export type { Device } from './device';
export type { NamedParameter, Parameter, ParameterTypes, ParameterValue } from './parameters';
export type { ParamArray, ParameterKind } from './parameter_kinds';
export { registerParameterKind } from './parameter_kinds';
export { ERROR_CODES } from './errors';
export type { ErrorCode } from './errors';
export type { StorageDType, CpuInfo, BackendInfo } from './native';

/** Backends this build has ('cpu', 'cuda'), whether each is usable here, and why not. */
export function backends(): BackendInfo[] {
  return binding.backends();
}

/** The CPU kernels in use: instruction set, threads, and the size from which updates go parallel. */
export function cpuInfo(): CpuInfo {
  return binding.cpuInfo();
}
