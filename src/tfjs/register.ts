// Registers the TensorFlow.js variable kinds (duck-typed: no tfjs import) with the parameter-kind
// registry. Called by the entry points, so that `new ExponentialMovingAverage(model.trainableWeights,
// ...)` works with nothing extra to import; the core modules never import src/tfjs.
import { registerParameterKind } from '../parameter_kinds';
import { layerVariableKind, tfVariableKind } from './variables';

/** Priorities: after typed arrays (30); a tf.Variable is checked before a LayerVariable. */
export const TF_VARIABLE_PRIORITY = 20;
export const LAYER_VARIABLE_PRIORITY = 10;

export function registerTfjsParameterKinds(): void {
  registerParameterKind(tfVariableKind, TF_VARIABLE_PRIORITY);
  registerParameterKind(layerVariableKind, LAYER_VARIABLE_PRIORITY);
}
