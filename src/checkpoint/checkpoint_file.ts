// Paths the user names for reading and writing checkpoints: only regular files, and errors that say
// which path failed.
//
// Opening a FIFO for reading blocks until a writer appears, on a libuv thread that nothing can
// cancel (and process.exit() waits for it); opening a device can have side effects; a directory or
// a socket cannot be read as a file at all. So a path is stat()ed before it is opened, opened with
// O_NONBLOCK (in case it was swapped for a FIFO in between), and fstat()ed once open: the file must
// still be a regular file, and its size then bounds every read.
import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { codedError, ERROR_CODES } from '../errors';

/** 'a directory', 'a FIFO (named pipe)', ...: what a non-regular file is, for messages. */
export function fileKind(stats: Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * `error` with `prefix` in front of its message (e.g. "Cannot read '<path>': "), keeping its `code`,
 * `errno` and `syscall` and holding the original as `cause`. An error whose message already starts
 * with `prefix` is returned as it is.
 */
export function prefixError(error: unknown, prefix: string): Error {
  if (error instanceof Error && error.message.startsWith(prefix)) return error;
  const original = error as Partial<NodeJS.ErrnoException> | null | undefined;
  const message = typeof original?.message === 'string' ? original.message : String(error);
  const name = original?.name;
  const Kind = name === 'TypeError' ? TypeError : name === 'RangeError' ? RangeError : Error;
  const wrapped: NodeJS.ErrnoException = new Kind(`${prefix}${message}`, { cause: error });
  for (const key of ['code', 'errno', 'syscall'] as const) {
    if (original?.[key] !== undefined) Object.assign(wrapped, { [key]: original[key] });
  }
  return wrapped;
}

/** The prefix of every error about reading `path`. */
export function readingPrefix(path: string): string {
  return `Cannot read '${path}': `;
}

/** Runs `read` and names `path` in any error it throws (see {@link prefixError}). */
export async function namingPathOnError<T>(path: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw prefixError(error, readingPrefix(path));
  }
}

function notRegular(path: string, stats: Stats, prefix: string, what: string): Error {
  const error: NodeJS.ErrnoException = new Error(`${prefix}it is ${fileKind(stats)}, not a regular file; ${what}`);
  error.code = stats.isDirectory() ? 'EISDIR' : ERROR_CODES.INVALID_ARGUMENT; // a FIFO, device or socket
  error.path = path;
  return error;
}

// O_NONBLOCK does not exist on Windows, which has no FIFOs that open() could block on either.
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/**
 * Opens `path` for reading if (following symbolic links) it is a regular file; refuses anything
 * else without reading from it. `size` is what fstat() reported once open: read no more than that.
 * Errors name the path ("Cannot read '<path>': ...").
 */
export async function openRegularFile(path: string): Promise<{ file: FileHandle; size: number }> {
  const prefix = readingPrefix(path);
  const what = 'only regular files (or symbolic links to them) are read';
  let file: FileHandle;
  try {
    const before = await stat(path);
    if (!before.isFile()) throw notRegular(path, before, prefix, what);
    file = await open(path, READ_FLAGS);
  } catch (error) {
    throw prefixError(error, prefix);
  }
  try {
    const opened = await file.stat();
    if (!opened.isFile()) throw notRegular(path, opened, prefix, what);
    return { file, size: opened.size };
  } catch (error) {
    await file.close().catch(() => undefined);
    throw prefixError(error, prefix);
  }
}

/** Reads a whole regular file (see {@link openRegularFile}), at most the size fstat() reported. */
export async function readRegularFile(path: string): Promise<Buffer> {
  const { file, size } = await openRegularFile(path);
  return namingPathOnError(path, async () => {
    try {
      const buffer = Buffer.allocUnsafe(size);
      let done = 0;
      while (done < size) {
        const { bytesRead } = await file.read(buffer, done, Math.min(size - done, 1 << 30), done);
        if (bytesRead === 0) throw codedError('INVALID_CHECKPOINT', `the file ended at byte ${done} of ${size} (it shrank while being read)`);
        done += bytesRead;
      }
      return buffer;
    } finally {
      await file.close();
    }
  });
}

/** The prefix of every error about saving to `target`. */
export function savingPrefix(target: string): string {
  return `Cannot save to '${target}': `;
}

/**
 * Checks, before anything is written, that `target` can be replaced by a new regular file: it is
 * missing, a regular file, or a symbolic link (which the rename replaces; the link is checked to
 * point at a regular file or at nothing), and its folder exists. Anything else (a directory, a
 * device, a FIFO, a socket) is refused with an error naming `target`.
 */
export async function checkSaveTarget(target: string, folder: string): Promise<void> {
  const prefix = savingPrefix(target);
  const what = 'save() replaces only regular files (or symbolic links to them)';
  let stats: Stats | undefined;
  try {
    stats = await stat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw prefixError(error, prefix);
  }
  if (stats !== undefined && !stats.isFile()) {
    throw notRegular(target, stats, prefix, `${what}${stats.isDirectory() ? '; to save into it, name a file inside it' : ''}`);
  }
  if (stats !== undefined) return;
  let parent: Stats;
  try {
    parent = await stat(folder);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw prefixError(error, `${prefix}its folder '${folder}' does not exist: `);
    throw prefixError(error, prefix);
  }
  if (!parent.isDirectory()) {
    const error: NodeJS.ErrnoException = new Error(`${prefix}'${folder}' is ${fileKind(parent)}, not a folder`);
    error.code = 'ENOTDIR';
    throw error;
  }
}
