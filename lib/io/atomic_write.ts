/**
 * Writes a file so that a crash, a kill or a full disk never leaves it half-written: the data goes to a temporary
 * file in the same directory, is flushed to disk (fsync), and only then renamed over the target; the directory is
 * flushed so the rename itself survives a power cut. If anything fails the temporary file is removed and the
 * previous file, if any, is untouched.
 *
 * Temporary files are named `.{name}.{pid}.{time}.{n}.tmp`; one left behind by a killed process is never read as
 * the target, and `isStaleTempFile` tells a later writer that it may remove it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage } from './preview';

/** What a write failed with, in words a user can act on (appended to the system's message). */
const HINTS: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is exhausted',
  EFBIG: 'over the file size limit: see ulimit -f',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
};

/** An fs error's message with a hint for the common causes, e.g. "ENOSPC: no space left on device, write (the disk is full)". */
export function describeFsError(err: unknown): string {
  const message = errorMessage(err);
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const hint = code ? HINTS[code] : undefined;
  return hint && !message.includes(hint) ? `${message} (${hint})` : message;
}

/** An error that keeps the system error's `code` (ENOSPC, EFBIG...) and the original error as `cause`. */
export class WriteError extends Error {
  readonly code: string | undefined;
  constructor(
    readonly file: string,
    readonly reason: string,
    cause: unknown,
  ) {
    super(`could not write ${file}: ${reason}`, { cause });
    this.name = 'WriteError';
    this.code = (cause as NodeJS.ErrnoException | null)?.code;
  }
}

let counter = 0;

export function writeFileAtomic(target: string, chunks: ReadonlyArray<Uint8Array> | Uint8Array | string): void {
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${Date.now()}.${counter++}.tmp`);
  const parts = typeof chunks === 'string' ? [Buffer.from(chunks, 'utf8')] : chunks instanceof Uint8Array ? [chunks] : chunks;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    for (const part of parts) {
      let off = 0;
      while (off < part.byteLength) off += fs.writeSync(fd, part, off, part.byteLength - off);
    }
    fs.fsyncSync(fd);
    const closing = fd;
    fd = undefined;
    fs.closeSync(closing); // close can report a deferred write error (NFS, full disk): it counts as a failure
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // the write already failed; the temporary file goes below
      }
    }
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // nothing more can be done; a later save removes stale temporary files
    }
    throw new WriteError(target, describeFsError(err), err);
  }
  fsyncDirectory(dir);
}

/** Flushes a directory's entries (renames, new and removed files) to disk, where the platform allows it. */
export function fsyncDirectory(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Some platforms cannot open or fsync a directory; the rename has still happened.
  }
}

/** Whether a process with this id is running (a process we may not signal still counts as running). */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const TEMP_FILE = /^\..+\.(\d+)\.\d+(?:\.\d+)?\.tmp$/;

/**
 * Whether `name` (an entry of a directory) is a temporary file of writeFileAtomic left by a process that is gone:
 * one of a running process, this one included, may still be in use and is never called stale.
 */
export function isStaleTempFile(name: string): boolean {
  const m = TEMP_FILE.exec(name);
  return m !== null && !processAlive(Number(m[1]));
}
