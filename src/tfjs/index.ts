// model-ema/tfjs: the TensorFlow.js helpers that need tfjs itself (a training callback) or its
// model API (saving). Using tf.Variables and model.weights as EMA parameters needs none of this:
// the package entry registers their kinds, and so does this entry (registering twice is harmless).
//
//   const tf = require('@tensorflow/tfjs-node');            // or '@tensorflow/tfjs'
//   const { ExponentialMovingAverage } = require('model-ema');
//   const { createEmaCallback, saveAveragedModel } = require('model-ema/tfjs');
//   const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.99 });
//   await model.fit(x, y, { callbacks: [createEmaCallback(ema, { tf, validationData: [xv, yv] })] });
//   await saveAveragedModel(model, ema, 'file://./model-ema');
// A model with BatchNormalization: `emaForModel(model, { decay, buffers })` also averages ('average'),
// copies ('copy') or leaves out ('ignore') its non-trainable weights (model_ema.ts).
import { registerTfjsParameterKinds } from './register';

registerTfjsParameterKinds();

export { createEmaCallback } from './callback';
export type { EmaCallback, EmaCallbackOptions, EmaValidationData } from './callback';
export { fileIOHandler, saveAveragedModel } from './save';
export { BUFFER_POLICIES, emaForModel, ModelEma } from './model_ema';
export type { BufferPolicy, EmaForModelOptions, LayersModelLike } from './model_ema';
export type { FileIOHandler } from './save';
export { loadTfjs, TFJS_PACKAGES } from './module';
export type { TfjsModule } from './module';
export type { LayerVariableLike, TfVariableLike } from './variables';
