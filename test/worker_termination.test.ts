// A worker_thread terminated while it is inside an addon call (or a process that exits while a
// worker is busy) must never take the process down: the addon returns quietly while the worker's
// environment is torn down. Each case runs test/helpers/worker_termination.js in a child process,
// so that an abort fails the test (a signal) instead of killing jest.
import { spawn } from 'node:child_process';
import * as path from 'node:path';

const helper = path.join(__dirname, 'helpers', 'worker_termination.js');

// The operations the helper knows, each looped on a large arena (about 2M elements) by the worker.
const OPERATIONS = ['constructor', 'update', 'copyTo', 'storeRestore', 'updateAsync', 'saveLoad', 'updateTracks', 'updateTracksAsync'];
// Those that read a JS array, so that a getter can leave from inside the call.
const READS_ARRAYS = ['constructor', 'update', 'copyTo', 'storeRestore', 'updateAsync', 'updateTracks', 'updateTracksAsync'];

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [helper, ...args], {
      // Two threads per pool: the kernels' worker threads are running when the worker goes.
      env: { ...process.env, MODEL_EMA_THREADS: '2' },
      timeout: 40_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

// The child must exit by itself with status 0: no SIGABRT ("terminate called after throwing an
// instance of 'Napi::Error'"), no fatal error, no timeout.
function expectClean(result: Run, what: string): any {
  const detail = `${what}: exit code ${result.code}, signal ${result.signal}\n${result.stderr.slice(-2000)}`;
  if (result.code !== 0 || result.signal !== null) throw new Error(detail);
  expect(result.stderr).not.toMatch(/terminate called|FATAL ERROR|Aborted/);
  return JSON.parse(result.stdout.trim().split('\n').pop()!);
}

test.each(OPERATIONS)('40 workers terminated at a random moment of %s: the process survives', async (operation) => {
  const result = expectClean(await run(['terminate', operation, '40']), `terminate ${operation}`);
  expect(result).toEqual({ rounds: 40, errors: [] });
});

test('process.exit() from the main thread while a worker is inside a call: the process exits normally', async () => {
  const cases = OPERATIONS.flatMap((operation) => [0, 2 + Math.floor(Math.random() * 8)].map((delay) => [operation, delay] as const));
  // Two child processes at a time.
  const queue = [...cases];
  const lane = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const [operation, delay] = next;
      const result = expectClean(await run(['exit', operation, String(delay)]), `exit during ${operation} after ${delay} ms`);
      expect(result).toEqual({ exiting: true, errors: [] });
    }
  };
  await Promise.all([lane(), lane()]);
});

test.each(READS_ARRAYS)('a worker that calls process.exit() from a getter read inside %s leaves cleanly', async (operation) => {
  const result = expectClean(await run(['exit-inside', operation]), `exit inside ${operation}`);
  expect(result).toEqual({ code: 0, errors: [] });
});

test('stress: random operations on two workers at a time, terminated at random moments (while loading the addon too), for 4 s', async () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  const result = expectClean(await run(['stress', '4000', String(seed)]), `stress with seed ${seed}`);
  expect(result.errors).toEqual([]);
  expect(result.rounds).toBeGreaterThan(10);
});
