// The text `model-ema inspect` prints: a few lines of scalars, then one row per parameter.
import type { CheckpointReport } from './inspect';

function bytesText(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ').trimEnd());
}

export function formatReport(report: CheckpointReport): string {
  const total = report.parameters.reduce((n, p) => n + p.elements, 0);
  const counters =
    report.step === null
      ? 'no schedule or counters (format version 1: the schedule is torch_ema or constant by num_updates)'
      : `step ${report.step}, samples ${report.samples}, seconds ${report.seconds}`;
  const lines = [
    `${report.path}: model-ema checkpoint, format version ${report.formatVersion}, ${bytesText(report.bytes)}`,
    `checksums: verified (${report.verifiedTensors} tensors, and the metadata digest)`,
    `dtype: ${report.dtype}; store() backup: ${report.collectedDType ?? 'none'}`,
    `decay: ${report.decay}`,
    `num_updates: ${report.numUpdates === null ? 'null (only the torch_ema schedule counts it)' : report.numUpdates}`,
    `counters: ${counters}`,
    `non-finite: ${report.nonFiniteStats.skippedUpdates} updates skipped, ${report.nonFiniteStats.skippedElements} elements skipped`,
    `schedule: ${report.schedule === null ? '-' : JSON.stringify(report.schedule)}`,
    `parameters: ${report.parameters.length}, ${total} elements`,
  ];
  const rows = [['#', 'name', 'shape', 'elements', 'tensor']];
  for (const p of report.parameters) {
    rows.push([String(p.index), p.name === null ? '(unnamed)' : JSON.stringify(p.name), `[${p.shape.join(', ')}]`, String(p.elements), p.tensor]);
  }
  return [...lines, ...table(rows).map((line) => `  ${line}`)].join('\n');
}
