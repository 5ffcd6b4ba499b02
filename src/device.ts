// Where shadows live. 'cpu' always works; CUDA devices are checked against what the native build
// reports, so an unavailable device fails with the reason before anything changes.
import { expectedRangeError, expectedTypeError } from './errors';
import { binding } from './native';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export function parseDevice(value: unknown, argument: string): Device {
  if (typeof value !== 'string') throw expectedTypeError("'cpu', 'cuda' or 'cuda:N'", argument, value);
  if (value === 'cpu' || value === 'cuda' || /^cuda:(0|[1-9][0-9]{0,3})$/.test(value)) return value as Device;
  throw expectedRangeError("'cpu', 'cuda' or 'cuda:N'", argument, JSON.stringify(value));
}

/** Throws an Error naming the device and why it cannot be used here. */
export function assertDeviceAvailable(device: Device): void {
  if (device === 'cpu') return;
  const cuda = binding.backends().find((b) => b.name === 'cuda');
  const reason = !cuda || !cuda.available ? cuda?.reason ?? 'no CUDA backend' : undefined;
  // Until device arenas are built in, an available CUDA backend still cannot hold shadows.
  throw new Error(
    `Device '${device}' is not available: ${reason ?? 'CUDA shadow arenas are not supported by this build'}`,
  );
}
