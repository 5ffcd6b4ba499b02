const { backends, ExponentialMovingAverage } = require('model-ema');

const cuda = backends().find((b) => b.name === 'cuda');
const usable = cuda !== undefined && cuda.available;
console.log(usable ? `CUDA: ${cuda.devices.length} device(s)` : `CPU only: ${cuda ? cuda.reason : 'no CUDA backend in this build'}`);

const weights = [new Float32Array(1 << 20).fill(1)];
const ema = new ExponentialMovingAverage(weights, { decay: 0.999, device: usable ? 'cuda' : 'cpu' });
weights[0].fill(3);
ema.update(); // reads the host arrays, averages on the device
ema.copyTo(); // and back into the host arrays
console.log(`shadows on ${ema.device}; first value ${weights[0][0]}`);
ema.dispose();
