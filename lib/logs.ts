/**
 * Functions' logs: what their containers wrote, and the platform's own events about them, kept per
 * function under `<PLAT_HOME>/logs/functions/<name>/` as JSON lines, so they outlive the containers.
 * The worker collects and writes them (worker/log-collector.ts); the gateway reads them for
 * `GET /functions/:name/logs` and appends the events only it sees (a request that timed out).
 *
 * Layout: `current.ndjson` takes new lines; past a fifth of the size bound it is renamed to
 * `<ms>.ndjson` (the time of the rename, so segments sort by age). Segments older than the
 * retention, and the oldest ones past the size bound, are deleted.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';

export type LogStream = 'stdout' | 'stderr' | 'plat';

export interface LogRecord {
  /** ISO time with milliseconds. */
  time: string;
  /** The container's short id (12 hex digits); absent for events about the function as a whole. */
  instance?: string;
  version?: string;
  stream: LogStream;
  text: string;
  requestId?: string;
}

export interface LogRetention {
  /** Bytes kept per function, segments included. */
  maxBytes: number;
  /** How long a line is kept, in ms. */
  maxAgeMs: number;
}

/**
 * The marker a runtime puts before a line written while it handled a request (see the bootstraps):
 * `\u001fplat-rid=<id>\u001f`. The collector takes the id off the line.
 */
export const REQUEST_MARK = '\u001fplat-rid=';
const MARK_END = '\u001f';
/** What a request id may be: inbound `x-request-id` values that do not match are replaced. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** Splits the request marker off a line the runtime wrote. */
export function takeRequestId(line: string): { text: string; requestId?: string } {
  if (!line.startsWith(REQUEST_MARK)) return { text: line };
  const end = line.indexOf(MARK_END, REQUEST_MARK.length);
  if (end < 0) return { text: line };
  const requestId = line.slice(REQUEST_MARK.length, end);
  return REQUEST_ID_PATTERN.test(requestId) ? { text: line.slice(end + 1), requestId } : { text: line };
}

export function logsDir(dataDir: string, name: string): string {
  return join(dataDir, 'logs', 'functions', name);
}

const CURRENT = 'current.ndjson';
const SEGMENT = /^(\d+)\.ndjson$/;
/** A segment is this share of the bound: at most one fifth of the log is lost at once when the bound is met. */
const SEGMENTS = 5;

/** The files of a function's log, oldest first; each with the time it was closed (Infinity for the current one). */
async function files(dir: string): Promise<Array<{ path: string; closedAt: number }>> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const segments = names
    .map((n) => SEGMENT.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ path: join(dir, m[0]), closedAt: Number(m[1]) }))
    .sort((a, b) => a.closedAt - b.closedAt);
  if (names.includes(CURRENT)) segments.push({ path: join(dir, CURRENT), closedAt: Number.POSITIVE_INFINITY });
  return segments;
}

/**
 * Appends records to functions' logs. Writes are batched (one append per function every few
 * milliseconds) and each append is whole lines with O_APPEND, so a gateway's appends and the
 * worker's interleave line by line.
 */
export class LogWriter {
  private readonly pending = new Map<string, string[]>();
  private readonly sizes = new Map<string, number>();
  private flushing?: Promise<void>;
  private timer?: ReturnType<typeof setTimeout>;

  private lastRotation = 0;

  /**
   * One process rotates and prunes (the worker, which writes nearly every line); others (a gateway)
   * only append, with `rotates` false, so two never rename one file at once.
   */
  constructor(
    private readonly dataDir: string,
    private readonly retention: LogRetention,
    private readonly flushMs = 50,
    private readonly rotates = true,
  ) {}

  append(name: string, ...records: LogRecord[]): void {
    const lines = this.pending.get(name) ?? [];
    for (const record of records) lines.push(`${JSON.stringify(record)}\n`);
    this.pending.set(name, lines);
    this.timer ??= setTimeout(() => void this.flush(), this.flushMs);
  }

  /** Writes what is pending; resolves when it is on disk. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    const batch = [...this.pending];
    this.pending.clear();
    this.flushing = Promise.all(batch.map(([name, lines]) => this.write(name, lines.join('')))).then(() => undefined);
    await this.flushing;
  }

  private async write(name: string, text: string): Promise<void> {
    const dir = logsDir(this.dataDir, name);
    const path = join(dir, CURRENT);
    try {
      await appendFile(path, text, { mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await appendFile(path, text, { mode: 0o600 });
    }
    let size = this.sizes.get(name);
    if (size === undefined) size = (await stat(path).catch(() => undefined))?.size ?? 0;
    else size += Buffer.byteLength(text);
    this.sizes.set(name, size);
    if (this.rotates && size >= this.retention.maxBytes / SEGMENTS) {
      // Named by when it was closed, never twice the same (two rotations can fall in one millisecond).
      this.lastRotation = Math.max(Date.now(), this.lastRotation + 1);
      await rename(path, join(dir, `${this.lastRotation}.ndjson`)).catch(() => undefined);
      this.sizes.set(name, 0);
      await prune(dir, this.retention);
    }
  }

  /** Deletes what is past the retention in every function's log. */
  async pruneAll(): Promise<void> {
    const root = join(this.dataDir, 'logs', 'functions');
    for (const name of await readdir(root).catch(() => [] as string[])) await prune(join(root, name), this.retention);
  }
}

/** Deletes segments closed before the retention began, then the oldest ones while the log is over its bound. */
async function prune(dir: string, retention: LogRetention): Promise<void> {
  const all = await files(dir);
  const sized = await Promise.all(all.map(async (f) => ({ ...f, size: (await stat(f.path).catch(() => undefined))?.size ?? 0 })));
  let total = sized.reduce((sum, f) => sum + f.size, 0);
  const oldest = Date.now() - retention.maxAgeMs;
  for (const file of sized) {
    if (file.closedAt === Number.POSITIVE_INFINITY) break;
    if (file.closedAt >= oldest && total <= retention.maxBytes) break;
    await rm(file.path, { force: true });
    total -= file.size;
  }
}

export interface LogQuery {
  /** Only lines at or after this time (ms since the epoch). */
  since?: number;
  /** Only the last N lines of what is there (before following). */
  tail?: number;
  version?: string;
  requestId?: string;
  follow?: boolean;
}

function matches(record: LogRecord, query: LogQuery, oldest: number): boolean {
  if (query.version && record.version !== query.version) return false;
  if (query.requestId && record.requestId !== query.requestId) return false;
  if (query.since !== undefined && Date.parse(record.time) < query.since) return false;
  return Date.parse(record.time) >= oldest;
}

function parse(line: string): LogRecord | undefined {
  if (!line) return undefined;
  try {
    return JSON.parse(line) as LogRecord;
  } catch {
    return undefined; // a line cut by a crash mid-write
  }
}

/** Every record of a closed file (none when it went meanwhile). */
async function recordsOf(path: string): Promise<LogRecord[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .map(parse)
    .filter((record): record is LogRecord => record !== undefined);
}

/** How often a follower looks for new lines. */
const FOLLOW_POLL_MS = 200;

/**
 * A function's log lines that match the query, oldest first; with `follow`, then every line written
 * after, until `signal` aborts.
 */
export async function* readLogs(
  dataDir: string,
  name: string,
  query: LogQuery,
  retention: LogRetention,
  signal: AbortSignal,
): AsyncGenerator<LogRecord> {
  const dir = logsDir(dataDir, name);
  const oldest = Date.now() - retention.maxAgeMs;
  const tail = query.tail ?? Number.POSITIVE_INFINITY;
  const kept: LogRecord[] = [];
  const all = await files(dir);
  // The current file is read by descriptor, so a rename while it is followed loses nothing.
  const current = all.at(-1)?.closedAt === Number.POSITIVE_INFINITY ? all.pop() : undefined;
  const keep = (records: LogRecord[]) => {
    for (const record of records) {
      if (!matches(record, query, oldest)) continue;
      kept.push(record);
      if (kept.length > tail) kept.shift();
    }
  };
  for (const file of all) if (query.since === undefined || file.closedAt >= query.since) keep(await recordsOf(file.path));
  let follower = current ? openFollower(current.path) : undefined;
  keep(follower?.read() ?? []);
  // Files hold lines in the order they were written; a container's last lines, read after its exit, come after the exit's event.
  kept.sort((a, b) => a.time.localeCompare(b.time));
  yield* kept;
  if (!query.follow) {
    follower?.close();
    return;
  }
  const path = join(dir, CURRENT);
  /** Files (by inode) already read while following, and since when the current one was followed. */
  const seen = new Set<number>();
  let openedAt = Date.now();
  /** Followed lines: the query's filters, but not its window (they are new). */
  const fresh = (records: LogRecord[]) => records.filter((record) => matches(record, query, 0));
  try {
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, FOLLOW_POLL_MS);
        signal.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            resolve();
          },
          { once: true },
        );
      });
      yield* fresh(follower?.read() ?? []);
      // Rotated (renamed) or first created: once the old file is read to its end, the segments
      // closed since (several rotations may come between two looks) and then the new current file.
      const inode = statSync(path, { throwIfNoEntry: false })?.ino;
      if (inode !== follower?.inode || follower === undefined) {
        yield* fresh(follower?.read() ?? []);
        if (follower) seen.add(follower.inode);
        follower?.close();
        follower = undefined;
        for (const segment of await files(dir)) {
          if (segment.closedAt < openedAt || segment.closedAt === Number.POSITIVE_INFINITY) continue;
          const segmentInode = statSync(segment.path, { throwIfNoEntry: false })?.ino;
          if (segmentInode === undefined || seen.has(segmentInode)) continue;
          seen.add(segmentInode);
          yield* fresh(await recordsOf(segment.path));
        }
        if (inode !== undefined) {
          openedAt = Date.now();
          follower = openFollower(path);
          yield* fresh(follower?.read() ?? []);
        }
      }
    }
  } finally {
    follower?.close();
  }
}

/** Reads a file's new whole lines from where the last read stopped. */
function openFollower(path: string): { inode: number; read(): LogRecord[]; close(): void } | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  const inode = fstatSync(fd).ino;
  let offset = 0;
  let partial = '';
  const decoder = new StringDecoder('utf8');
  const chunk = Buffer.alloc(1024 * 1024);
  return {
    inode,
    read() {
      const records: LogRecord[] = [];
      for (;;) {
        const n = readSync(fd, chunk, 0, chunk.length, offset);
        if (n <= 0) break;
        offset += n;
        const lines = (partial + decoder.write(chunk.subarray(0, n))).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const record = parse(line);
          if (record) records.push(record);
        }
      }
      return records;
    },
    close() {
      closeSync(fd);
    },
  };
}

/** One of the platform's own lines about a function (stream `plat`). */
export function platformRecord(text: string, about: { containerId?: string; version?: string; requestId?: string } = {}): LogRecord {
  const record: LogRecord = { time: new Date().toISOString(), stream: 'plat', text };
  if (about.containerId) record.instance = about.containerId.slice(0, 12);
  if (about.version) record.version = about.version;
  if (about.requestId) record.requestId = about.requestId;
  return record;
}

/** The time of an instance's last line in its function's current log file (its last MiB), or 0: where following it again starts. */
export function lastLineTime(dataDir: string, name: string, containerId: string): number {
  const path = join(logsDir(dataDir, name), CURRENT);
  const instance = containerId.slice(0, 12);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return 0;
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 1024 * 1024);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    let last = 0;
    for (const line of buffer.toString('utf8').split('\n')) {
      if (!line.includes(instance)) continue;
      const record = parse(line);
      if (record?.instance === instance && record.stream !== 'plat') last = Math.max(last, Date.parse(record.time));
    }
    return last;
  } finally {
    closeSync(fd);
  }
}
