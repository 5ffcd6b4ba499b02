// Where shadows live. 'cpu' always works; CUDA devices are checked against what the native build
// reports, so an unavailable device fails with the reason before anything changes.
import { codedError, expectedRangeError, expectedTypeError } from './errors';
import { binding } from './native';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export function parseDevice(value: unknown, argument: string): Device {
  if (typeof value !== 'string') throw expectedTypeError("'cpu', 'cuda' or 'cuda:N'", argument, value);
  if (value === 'cpu' || value === 'cuda' || /^cuda:(0|[1-9][0-9]{0,3})$/.test(value)) return value as Device;
  throw expectedRangeError("'cpu', 'cuda' or 'cuda:N'", argument, JSON.stringify(value));
}

/** The native arena's device: null for host memory, else the CUDA device index ('cuda' is 'cuda:0'). */
export function deviceIndex(device: Device): number | null {
  if (device === 'cpu') return null;
  return device === 'cuda' ? 0 : Number(device.slice('cuda:'.length));
}

/** Throws an Error naming the device and why it cannot be used here. */
export function assertDeviceAvailable(device: Device): void {
  const index = deviceIndex(device);
  if (index === null) return;
  const cuda = binding.backends().find((b) => b.name === 'cuda');
  let reason: string | undefined;
  if (!cuda || !cuda.available) {
    reason = cuda?.reason ?? 'this build of model-ema has no CUDA backend';
  } else {
    const count = cuda.devices?.length ?? 0;
    if (index >= count) {
      reason = `this machine has ${count} CUDA device${count === 1 ? '' : 's'} (${count === 0 ? 'none' : `cuda:0 to cuda:${count - 1}`})`;
    }
  }
  if (reason !== undefined) throw codedError('DEVICE_UNAVAILABLE', `Device '${device}' is not available: ${reason}`);
}
