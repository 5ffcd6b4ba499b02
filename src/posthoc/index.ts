// Post-hoc EMA (EDM2) snapshot files and synthesis: what the package entry re-exports.
export { MAX_CONDITION, profileInnerProduct, solvePhemaCoefficients, type PhemaCoefficients, type ProfilePoint } from './profile';
export { listPostHocSnapshots, writePostHocSnapshot, type PostHocSnapshot, type PostHocSnapshotInput } from './snapshot_files';
export { snapshotFileName, SNAPSHOT_FORMAT, type SnapshotDType, type SnapshotUnit } from './snapshot_format';
export { synthesize, synthesizeInto, type SynthesisOptions, type SynthesisResult, type SynthesisTarget } from './synthesize';
export { PostHocEma, type PostHocEmaOptions } from './post_hoc_ema';
