import { ERROR_CODES, ExponentialMovingAverage } from 'model-ema';

async function main(): Promise<void> {
  const weights = [new Float32Array(4).fill(1)];
  const ema = new ExponentialMovingAverage(weights, { decay: 0.999 });
  const pending = ema.updateAsync();
  try {
    ema.update(); // refused: the updateAsync() is still running
  } catch (error) {
    if ((error as { code?: string }).code !== ERROR_CODES.BUSY) throw error;
    await ema.settled(); // then the update goes through
    ema.update();
  }
  await pending;
  console.log(`updates: ${ema.numUpdates}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
