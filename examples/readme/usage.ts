import { ExponentialMovingAverage } from 'model-ema';

// Stand-ins for your model and training code:
const weights = [new Float32Array(784 * 128), new Float32Array(128)]; // your model's parameters
const optimizerStep = (w: Float32Array[]) => w.forEach((a) => a.forEach((v, i) => (a[i] = v + Math.random() - 0.5)));
const evaluate = (w: Float32Array[]) => w[1].reduce((sum, v) => sum + v * v, 0) / w[1].length;
const exportModel = (w: Float32Array[]) => console.log(`exporting ${w.length} averaged tensors`);

async function main(): Promise<void> {
  const ema = new ExponentialMovingAverage(weights, { decay: 0.999 });
  for (let step = 0; step < 100; step++) {
    optimizerStep(weights); // changes the weights in place
    ema.update();           // shadows <- shadows - (1 - d) * (shadows - weights)
  }

  // Evaluate with the averaged weights, then get the raw ones back (even if evaluate throws):
  const loss = await ema.withAveragedParameters(() => evaluate(weights));
  console.log(`loss with averaged weights: ${loss}, raw: ${evaluate(weights)}`);
  {
    using scope = ema.averageParameters(); // restored at the end of the block
    exportModel(weights);
  }
  await ema.save('ema.safetensors');       // readable from Python (see below)
  ema.dispose();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
