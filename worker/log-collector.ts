import type Docker from 'dockerode';
import type { LogRecord, LogStream, LogWriter } from '../lib/logs';
import { takeRequestId } from '../lib/logs';

/** The longest line kept whole; a longer one is cut, and says by how much. */
const LINE_MAX_CHARS = 64 * 1024;
/** A burst may use this many seconds' worth of the rate at once. */
const BURST_SECONDS = 5;

/** What a function's line is about: its function, version and container. */
export interface InstanceInfo {
  name: string;
  version?: string;
  containerId: string;
}

/**
 * Follows the output of this platform's containers (`docker logs --follow`, from when each started)
 * into the functions' logs, as whole lines: the engine cuts long lines and writes without a trailing
 * newline into pieces, which are put back together here. A line the runtime marked with a request id
 * keeps it (see lib/logs.ts). Each container may write `linesPerSecond` lines a second (a line of
 * more than 1 KiB counts once per KiB), with bursts of five times that; what is over is dropped,
 * and the log says how many lines were.
 */
export class LogCollector {
  private readonly following = new Map<string, { destroy(): void }>();
  private stopped = false;

  constructor(
    private readonly docker: Docker,
    private readonly writer: LogWriter,
    private readonly linesPerSecond: number,
  ) {}

  /** Starts following a container unless it is already followed. `sinceMs`: only lines written after this time. */
  follow(info: InstanceInfo, sinceMs = 0): void {
    if (this.following.has(info.containerId)) return;
    const placeholder = { destroy() {} };
    this.following.set(info.containerId, placeholder);
    this.docker
      .getContainer(info.containerId)
      .logs({ follow: true, stdout: true, stderr: true, timestamps: true, since: Math.floor(sinceMs / 1000) })
      .then((stream) => {
        const readable = stream as unknown as NodeJS.ReadableStream & { destroy(): void };
        if (this.following.get(info.containerId) !== placeholder) return readable.destroy();
        this.following.set(info.containerId, readable);
        const lines = new LineAssembler(info, this.writer, this.linesPerSecond, sinceMs);
        readable.on('data', (chunk: Buffer) => lines.push(chunk));
        let ended = false;
        const end = () => {
          if (ended) return;
          ended = true;
          if (this.following.get(info.containerId) === readable) this.following.delete(info.containerId);
          // The engine may end a follower before the last output is read (a line without a newline
          // at exit, most often): what it holds after the last piece seen is read once more.
          void this.catchUp(info.containerId, lines).finally(() => lines.end());
        };
        readable.on('end', end);
        readable.on('close', end);
        readable.on('error', end);
      })
      .catch(() => {
        // Removed before it could be followed: nothing more to read.
        if (this.following.get(info.containerId) === placeholder) this.following.delete(info.containerId);
      });
  }

  private async catchUp(containerId: string, lines: LineAssembler): Promise<void> {
    if (this.stopped) return;
    const rest = (await this.docker
      .getContainer(containerId)
      .logs({ follow: false, stdout: true, stderr: true, timestamps: true, since: Number(lines.lastNanos / 1_000_000_000n) })
      .catch(() => undefined)) as Buffer | undefined;
    if (rest) lines.push(rest, lines.lastNanos);
  }

  stop(): void {
    this.stopped = true;
    for (const stream of this.following.values()) stream.destroy();
    this.following.clear();
  }
}

/** The engine's frames of one container, turned into whole, rate-bound lines. */
class LineAssembler {
  private frames: Buffer = Buffer.alloc(0);
  private readonly partial: Record<'stdout' | 'stderr', { time: string; text: string } | undefined> = {
    stdout: undefined,
    stderr: undefined,
  };
  private tokens: number;
  private refilledAt = Date.now();
  private dropped = 0;
  private readonly capacity: number;
  private readonly instance: string;

  constructor(
    private readonly info: InstanceInfo,
    private readonly writer: LogWriter,
    private readonly linesPerSecond: number,
    private readonly sinceMs: number,
  ) {
    this.capacity = linesPerSecond * BURST_SECONDS;
    this.tokens = this.capacity;
    this.instance = info.containerId.slice(0, 12);
  }

  /** The time of the last piece taken, in ns since the epoch. */
  lastNanos = 0n;

  /** Docker multiplexes stdout and stderr in frames: 8-byte headers (stream at 0, size at 4). Pieces not after `after` (ns) are skipped. */
  push(chunk: Buffer, after = -1n): void {
    this.frames = this.frames.length ? Buffer.concat([this.frames, chunk]) : chunk;
    let offset = 0;
    while (offset + 8 <= this.frames.length) {
      const size = this.frames.readUInt32BE(offset + 4);
      if (offset + 8 + size > this.frames.length) break;
      const stream = this.frames[offset] === 2 ? 'stderr' : 'stdout';
      this.piece(stream, this.frames.toString('utf8', offset + 8, offset + 8 + size), after);
      offset += 8 + size;
    }
    this.frames = this.frames.subarray(offset);
  }

  /** One piece as the engine gives it: `<RFC 3339 time> <text>`, a whole line when it ends with a newline. */
  private piece(stream: 'stdout' | 'stderr', piece: string, after: bigint): void {
    const space = piece.indexOf(' ');
    const stamp = piece.slice(0, space);
    const nanos = nanosOf(stamp);
    if (nanos <= after) return;
    if (nanos > this.lastNanos) this.lastNanos = nanos;
    const body = piece.slice(space + 1);
    const complete = body.endsWith('\n');
    const text = complete ? body.slice(0, -1) : body;
    const open = this.partial[stream];
    if (open) {
      if (open.text.length < LINE_MAX_CHARS + 1) open.text += text;
    } else {
      this.partial[stream] = { time: isoMillis(stamp), text };
    }
    if (complete) this.line(stream);
  }

  private line(stream: 'stdout' | 'stderr'): void {
    const open = this.partial[stream];
    this.partial[stream] = undefined;
    if (!open || Date.parse(open.time) <= this.sinceMs) return;
    let { text, requestId } = takeRequestId(open.text.replace(/\r$/, ''));
    if (text.length > LINE_MAX_CHARS) text = `${text.slice(0, LINE_MAX_CHARS)}… [line cut at ${LINE_MAX_CHARS} characters]`;
    if (!this.take(1 + Math.floor(text.length / 1024))) {
      this.dropped++;
      return;
    }
    this.flushDropped(open.time);
    this.write(stream, open.time, text, requestId);
  }

  private take(cost: number): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.refilledAt) / 1000) * this.linesPerSecond);
    this.refilledAt = now;
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }

  private flushDropped(time: string): void {
    if (this.dropped === 0) return;
    this.write(
      'plat',
      time,
      `dropped ${this.dropped} lines: the function wrote more than ${this.linesPerSecond} lines a second (PLAT_LOG_RATE)`,
    );
    this.dropped = 0;
  }

  private write(stream: LogStream, time: string, text: string, requestId?: string): void {
    const record: LogRecord = { time, instance: this.instance, version: this.info.version, stream, text };
    if (requestId) record.requestId = requestId;
    this.writer.append(this.info.name, record);
  }

  /** The container's output ended: a last line without a newline still counts. */
  end(): void {
    this.line('stdout');
    this.line('stderr');
    this.flushDropped(new Date().toISOString());
  }
}

/** An RFC 3339 time with up to nine decimals as ns since the epoch (0 when it is not one). */
function nanosOf(stamp: string): bigint {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(stamp);
  if (!match) return 0n;
  const seconds = Date.parse(`${match[1]}Z`);
  if (Number.isNaN(seconds)) return 0n;
  return BigInt(seconds) * 1_000_000n + BigInt((match[2] ?? '').padEnd(9, '0'));
}

/** `2026-12-02T16:20:00.123456789Z` → `2026-12-02T16:20:00.123Z`. */
function isoMillis(stamp: string): string {
  const ms = Date.parse(stamp.replace(/(\.\d{3})\d*Z$/, '$1Z'));
  return Number.isNaN(ms) ? new Date().toISOString() : new Date(ms).toISOString();
}
