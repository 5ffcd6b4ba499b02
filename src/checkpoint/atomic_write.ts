// Atomic, streamed file writing: the target path always holds either its previous content or the
// complete new content, even if the process is killed or the machine loses power mid-write.
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { codedError } from '../errors';
import { checkSaveTarget, prefixError, savingPrefix } from './checkpoint_file';

/** Where a producer writes the bytes of the file being built by {@link writeFileAtomic}. */
export interface AtomicFileSink {
  /** Appends `bytes` after everything appended so far. */
  append(bytes: Uint8Array): Promise<void>;
  /** Overwrites bytes already appended, starting at `position` (e.g. to finish a header). */
  writeAt(bytes: Uint8Array, position: number): Promise<void>;
}

// Node refuses single reads/writes above 2 GiB - 1; stay well below it.
const MAX_IO_CHUNK = 1 << 30;

/** Writes all of `bytes` at `position`, looping over short writes and the per-call size limit. */
export async function writeFully(file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const length = Math.min(bytes.length - done, MAX_IO_CHUNK);
    const { bytesWritten } = await file.write(bytes, done, length, position + done);
    if (bytesWritten <= 0) throw codedError('INTERNAL', `Writing ${bytes.length} bytes made no progress at ${position + done}`);
    done += bytesWritten;
  }
}

/**
 * The temporary file used while writing `target`: hidden, in the same folder (so the final rename
 * never crosses file systems), and unique per process and call (so concurrent or crashed writers
 * never collide). A process killed mid-write leaves this file behind; it is never reused.
 */
export function temporaryPathFor(target: string): string {
  const suffix = `.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  return path.join(path.dirname(target), `.${shortenedBase(path.basename(target), NAME_MAX - 1 - suffix.length)}${suffix}`);
}

// Longest file name (in bytes) on Linux, macOS and Windows file systems alike.
const NAME_MAX = 255;

// `base` if it fits in `maxBytes` of UTF-8; else as much of it as fits (whole characters) followed by
// '~' and a hash of the whole name, so that a target whose own name is valid (up to NAME_MAX
// bytes) never fails with ENAMETOOLONG because of what the temporary name adds.
function shortenedBase(base: string, maxBytes: number): string {
  if (Buffer.byteLength(base) <= maxBytes) return base;
  const tag = `~${createHash('sha256').update(base).digest('hex').slice(0, 8)}`;
  let kept = '';
  let bytes = tag.length;
  for (const character of base) {
    bytes += Buffer.byteLength(character);
    if (bytes > maxBytes) break;
    kept += character;
  }
  return kept + tag;
}

/**
 * Creates or replaces the file at `target` with what `produce` appends to the sink, atomically:
 * the bytes go to a temporary file in the same folder, which is fsynced, renamed over `target`, and
 * then the folder is fsynced so the rename itself is durable. If `produce` or any step throws, the
 * temporary file is removed, `target` is untouched, and the error is rethrown.
 *
 * Before anything is written, `target` must be missing, a regular file, or a symbolic link to one
 * (or a dangling one), in an existing folder: a directory, device, FIFO or socket is refused, never
 * replaced. The rename replaces a symbolic link at `target` with the new file rather than writing
 * through it (the file it pointed to is left as it was; the new file is never written outside the
 * folder the caller named). The new file gets the default mode (0o666 minus the umask), not the
 * old file's mode.
 *
 * Every error from the file system names `target` ("Cannot save to '<target>': ...") and keeps the
 * original's `code` and the original as `cause`; errors thrown by `produce` pass through as they are.
 */
export async function writeFileAtomic(
  target: string,
  produce: (sink: AtomicFileSink) => Promise<void>,
): Promise<void> {
  const folder = path.dirname(path.resolve(target));
  await checkSaveTarget(target, folder);
  const temporary = temporaryPathFor(path.resolve(target));
  // 'wx': fail rather than write into a file someone else created under our unique name.
  let file: FileHandle | null = await open(temporary, 'wx').catch((error: unknown) => {
    throw prefixError(error, savingPrefix(target));
  });
  try {
    let length = 0;
    const handle = file;
    await produce({
      async append(bytes) {
        await writeFully(handle, bytes, length);
        length += bytes.length;
      },
      async writeAt(bytes, position) {
        if (position < 0 || position + bytes.length > length) {
          throw codedError('INTERNAL', `writeAt(${position}, ${bytes.length} bytes) is outside the ${length} bytes written`);
        }
        await writeFully(handle, bytes, position);
      },
    });
    await file.sync();
    await file.close();
    file = null;
    await rename(temporary, target);
  } catch (error) {
    await file?.close().catch(() => undefined);
    await unlink(temporary).catch(() => undefined);
    throw isSystemError(error) ? prefixError(error, savingPrefix(target)) : error;
  }
  await syncDirectory(folder).catch((error: unknown) => {
    throw prefixError(error, `${savingPrefix(target)}the file was written, but syncing its folder failed: `);
  });
}

// An error from the operating system (ENOSPC, EIO, ...), as opposed to one thrown by a producer.
function isSystemError(error: unknown): boolean {
  const { code, syscall } = (error ?? {}) as Partial<NodeJS.ErrnoException>;
  return typeof code === 'string' && typeof syscall === 'string';
}

/**
 * Whether a failure to open or fsync a folder means the platform will not do it, rather than that
 * the data is at risk: permissions (a folder the process may write and search but not read, mode
 * 0333, cannot be opened; some systems refuse fsync on directories with EPERM/EACCES), or no
 * support (Windows' EISDIR, EINVAL/ENOTSUP/EOPNOTSUPP/ENOSYS on some file systems). The file itself
 * was fsynced already; only the durability of the rename is then as good as the OS makes it.
 */
export function isDirectorySyncOptional(error: unknown): boolean {
  const code = (error as Partial<NodeJS.ErrnoException> | null)?.code;
  return typeof code === 'string' && DIRECTORY_SYNC_OPTIONAL.has(code);
}

const DIRECTORY_SYNC_OPTIONAL = new Set(['EACCES', 'EPERM', 'EISDIR', 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Makes a rename durable on POSIX by fsyncing the folder; best effort where the OS refuses (see
 * {@link isDirectorySyncOptional}). `openFolder` is replaceable for tests.
 */
export async function syncDirectory(dir: string, openFolder: (dir: string) => Promise<FileHandle> = (d) => open(d, 'r')): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await openFolder(dir);
    await handle.sync();
  } catch (error) {
    if (!isDirectorySyncOptional(error)) throw error;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
