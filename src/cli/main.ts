#!/usr/bin/env node
// The `model-ema` command (package.json "bin"). Exit codes: 0 done, 1 the file is not a valid
// checkpoint (or cannot be read), 2 a usage error.
import { inspectCheckpoint } from './inspect';
import { formatReport } from './format';

const USAGE = [
  'Usage: model-ema inspect [--json] <file.safetensors>',
  '',
  "  Prints a checkpoint's parameters (names, shapes, element counts), storage dtype, decay,",
  '  num_updates, counters and schedule, after verifying its layout, metadata digest and',
  "  per-tensor SHA-256 checksums. Exit code 1 and the reason when the file is not valid.",
].join('\n');

/** Where the command writes (process.stdout/stderr, or a test's sink). */
export interface Output {
  write(text: string): unknown;
}

/** Runs the command line `args` (without node and the script); returns the exit code. */
export async function main(args: readonly string[], out: Output = process.stdout, err: Output = process.stderr): Promise<number> {
  const [command, ...rest] = args;
  if (command === '--help' || command === '-h' || command === 'help') {
    out.write(`${USAGE}\n`);
    return 0;
  }
  const json = rest.includes('--json');
  const files = rest.filter((a) => a !== '--json');
  if (command !== 'inspect' || files.length !== 1 || files[0].startsWith('-')) {
    err.write(`${command === undefined || command === 'inspect' ? '' : `model-ema: unknown command ${JSON.stringify(command)}\n`}${USAGE}\n`);
    return 2;
  }
  try {
    const report = await inspectCheckpoint(files[0]);
    out.write(`${json ? JSON.stringify(report, null, 2) : formatReport(report)}\n`);
    return 0;
  } catch (error) {
    err.write(`model-ema inspect: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
