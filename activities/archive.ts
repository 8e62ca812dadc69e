import { posix } from 'node:path';
import { unzipSync } from 'fflate';
import { Parser, type ReadEntry } from 'tar';
import { LIMITS } from '../lib/settings';

/** One regular file read out of an uploaded archive. */
export interface ArchiveFile {
  path: string;
  data: Uint8Array;
  /** Whether the file is executable (all files are written owner-writable, world-readable). */
  executable: boolean;
}

export interface ArchiveLimits {
  maxFiles: number;
  maxBytes: number;
}

export const ARCHIVE_LIMITS: ArchiveLimits = { maxFiles: LIMITS.unpackedFiles, maxBytes: LIMITS.unpackedBytes };

/** Raised for archives that are malformed, unsafe or too large: the user's fault, not retryable. */
export class ArchiveError extends Error {}

/**
 * A safe relative path for an archive entry, or an ArchiveError. Refuses absolute paths and any
 * `..` that would leave the function folder (zip-slip), and Windows drive or backslash tricks.
 */
export function safeEntryPath(raw: string): string {
  if (raw.includes('\\') || raw.includes('\0') || /^[A-Za-z]:/.test(raw)) {
    throw new ArchiveError(`archive entry "${raw}" has an unsupported path`);
  }
  if (raw.startsWith('/')) throw new ArchiveError(`archive entry "${raw}" has an absolute path`);
  const normalized = posix.normalize(raw).replace(/\/+$/, '');
  if (normalized === '..' || normalized.startsWith('../')) {
    throw new ArchiveError(`archive entry "${raw}" points outside the function folder`);
  }
  return normalized === '.' ? '' : normalized;
}

/** Reads a tar.gz or zip archive (told apart by their magic bytes) into memory, within limits. */
export async function readArchive(data: Uint8Array, limits = ARCHIVE_LIMITS, keepData = true): Promise<ArchiveFile[]> {
  if (data[0] === 0x1f && data[1] === 0x8b) return consistent(await readTarGz(data, limits, keepData));
  if (data[0] === 0x50 && data[1] === 0x4b) return consistent(readZip(data, limits, keepData));
  throw new ArchiveError('the upload is neither a tar.gz nor a zip archive');
}

/**
 * Checks an archive as readArchive does (paths, entry types, declared sizes and counts, a damaged
 * stream) without keeping its contents: the gateway refuses a bad upload with 400 before it
 * stores anything, and the worker's full read checks it again.
 */
export async function validateArchive(data: Uint8Array, limits = ARCHIVE_LIMITS): Promise<void> {
  await readArchive(data, limits, false);
}

/**
 * One file a path: a path listed twice keeps its last entry (as tar does when it extracts), and a
 * path that is a file and also holds files (`a` and `a/b`) cannot be laid out on disk: refused.
 */
function consistent(files: ArchiveFile[]): ArchiveFile[] {
  const byPath = new Map<string, ArchiveFile>();
  for (const file of files) byPath.set(file.path, file);
  for (const path of byPath.keys()) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join('/');
      if (byPath.has(folder)) throw new ArchiveError(`archive entry "${folder}" is a file, but "${path}" puts it in a folder of that name`);
    }
  }
  return [...byPath.values()];
}

class Budget {
  files = 0;
  bytes = 0;
  constructor(private readonly limits: ArchiveLimits) {}
  take(size: number): void {
    this.files += 1;
    this.bytes += size;
    if (this.files > this.limits.maxFiles) throw new ArchiveError(`the archive has more than ${this.limits.maxFiles} files`);
    if (this.bytes > this.limits.maxBytes) {
      throw new ArchiveError(`the archive unpacks to more than ${this.limits.maxBytes / 1024 / 1024} MiB`);
    }
  }
}

function readTarGz(data: Uint8Array, limits: ArchiveLimits, keepData: boolean): Promise<ArchiveFile[]> {
  const budget = new Budget(limits);
  const files: ArchiveFile[] = [];
  return new Promise((resolve, reject) => {
    let failed = false;
    const fail = (error: unknown) => {
      if (failed) return;
      failed = true;
      reject(error instanceof ArchiveError ? error : new ArchiveError(`the tar.gz archive is damaged: ${(error as Error).message}`));
    };
    const parser = new Parser({
      strict: true,
      onReadEntry: (entry: ReadEntry) => {
        try {
          const path = safeEntryPath(entry.path);
          if (entry.type === 'Directory' || path === '') {
            entry.resume();
            return;
          }
          if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
            throw new ArchiveError(`archive entry "${entry.path}" is a ${entry.type}; only files and folders are allowed`);
          }
          budget.take(entry.size);
          if (!keepData) {
            files.push({ path, data: new Uint8Array(0), executable: false });
            entry.resume();
            return;
          }
          const chunks: Buffer[] = [];
          entry.on('data', (chunk: Buffer) => chunks.push(chunk));
          entry.on('end', () => {
            files.push({ path, data: new Uint8Array(Buffer.concat(chunks)), executable: ((entry.mode ?? 0) & 0o111) !== 0 });
          });
        } catch (error) {
          entry.resume();
          fail(error);
        }
      },
    });
    parser.on('error', fail);
    parser.on('warn', (_code: string, message: string) => fail(new Error(message)));
    parser.on('end', () => {
      if (!failed) resolve(files);
    });
    parser.end(Buffer.from(data));
  });
}

function readZip(data: Uint8Array, limits: ArchiveLimits, keepData: boolean): ArchiveFile[] {
  const budget = new Budget(limits);
  let entries: Record<string, Uint8Array>;
  const listed: string[] = [];
  try {
    entries = unzipSync(data, {
      filter: (file) => {
        const path = safeEntryPath(file.name);
        if (file.name.endsWith('/') || path === '') return false;
        budget.take(file.originalSize);
        if (!keepData) listed.push(path);
        return keepData;
      },
    });
  } catch (error) {
    if (error instanceof ArchiveError) throw error;
    throw new ArchiveError(`the zip archive is damaged: ${(error as Error).message}`);
  }
  if (!keepData) return listed.map((path) => ({ path, data: new Uint8Array(0), executable: false }));
  return Object.entries(entries).map(([name, bytes]) => ({ path: safeEntryPath(name), data: bytes, executable: false }));
}

/**
 * Archives made by zipping a folder hold everything under one top-level folder: when the function's
 * entry is not at the root but is under that single folder, drop the folder from every path.
 */
export function stripSingleTopFolder(files: ArchiveFile[], entry: string): ArchiveFile[] {
  if (files.some((f) => f.path === entry)) return files;
  const tops = new Set(files.map((f) => f.path.split('/')[0]));
  const [top] = tops;
  if (tops.size !== 1 || !top || files.some((f) => f.path === top)) return files;
  const prefix = `${top}/`;
  return files.map((f) => ({ ...f, path: f.path.slice(prefix.length) }));
}
