const tf = require('@tensorflow/tfjs');
const { emaForModel } = require('model-ema/tfjs');

const model = tf.sequential({
  layers: [tf.layers.dense({ inputShape: [4], units: 8 }), tf.layers.batchNormalization(), tf.layers.dense({ units: 1 })],
});
const ema = emaForModel(model, { decay: 0.999, buffers: 'average' }); // any constructor option, plus buffers
console.log(`averaging ${ema.size} tensors (${model.nonTrainableWeights.length} of them BatchNorm statistics), buffers: ${ema.buffers}`);
