import { existsSync } from 'node:fs';
import { dlopen, FFIType, type Pointer, toArrayBuffer } from 'bun:ffi';
import type { Pool } from './pool';

/**
 * The native invoke front's JavaScript half (its Rust half and what it does: gateway/native/src/lib.rs).
 * PLAT_INVOKE_FRONT=native loads it into the gateway's process: it takes the public port, serves warm
 * requests from end to end on a thread of its own, and sends the rest to the Bun front on loopback.
 * This side tells it what it decides with (pools, who may call, containers gone) and drains what it
 * did (each invocation, containers it found gone, timeouts) for the gateway's metrics, records, logs
 * and entities. Both sides place requests on the same counts: the library's memory, seen here as an
 * Int32Array (pool.ts).
 */

const symbols = {
  plat_front_counts: { args: [], returns: FFIType.ptr },
  plat_front_slots: { args: [], returns: FFIType.u32 },
  plat_front_error: { args: [FFIType.ptr, FFIType.u64_fast], returns: FFIType.u64_fast },
  plat_front_start: { args: [FFIType.ptr, FFIType.u64_fast], returns: FFIType.i32 },
  plat_front_stop: { args: [], returns: FFIType.void },
  plat_front_active: { args: [], returns: FFIType.i32 },
  plat_front_pool: { args: [FFIType.ptr, FFIType.u64_fast], returns: FFIType.i32 },
  plat_front_unpool: { args: [FFIType.ptr, FFIType.u64_fast], returns: FFIType.void },
  plat_front_access: { args: [FFIType.ptr, FFIType.u64_fast], returns: FFIType.i32 },
  plat_front_unaccess: { args: [FFIType.ptr, FFIType.u64_fast], returns: FFIType.void },
  plat_front_forget: { args: [FFIType.ptr, FFIType.u64_fast], returns: FFIType.void },
  plat_front_drain: { args: [FFIType.ptr, FFIType.u64_fast], returns: FFIType.u64_fast },
  plat_front_tally: { args: [], returns: FFIType.void },
  plat_front_records: { args: [FFIType.ptr, FFIType.u64_fast], returns: FFIType.u64_fast },
  plat_front_client: { args: [FFIType.u32, FFIType.ptr, FFIType.u64_fast], returns: FFIType.u64_fast },
} as const;

type Library = ReturnType<typeof dlopen<typeof symbols>>['symbols'];

/** What the native front is started with. */
export interface NativeStart {
  hostname: string;
  port: number;
  /** The Bun invoke front, on loopback: requests the native front does not decide. */
  frontPort: number;
  /** Bun's server, on loopback: connections that are not plainly HTTP/1.1 to /function/. */
  serverPort: number;
  adminToken: string;
  scheme: 'http' | 'https';
  headerLimit: number;
  /** Whether invocations are counted and recorded (PLAT_METRICS). */
  metrics: boolean;
}

/** A function's invocations served by the native front since the last drain, as gateway/metrics.ts tallies them. */
export interface NativeTally {
  name: string;
  codes: [number, number][];
  buckets: number[];
  sum: number;
  count: number;
}

/** What the gateway does with what the native front tells (gateway/invoke/service.ts). */
export interface NativeEvents {
  tally(tally: NativeTally): void;
  /** Invocation records, JSON lines ready to be written. */
  records(lines: Uint8Array): void;
  /** An instance served requests (for the idle rules). */
  used(name: string, containerId: string): void;
  /** An instance failed a request (`failure` says how): the gateway drops it and tells its entity. */
  gone(containerId: string, key: string, name: string, failure: string): void;
  timedOut(name: string, containerId: string, version: string, requestId: string, timeoutMs: number): void;
}

const DRAIN_BYTES = 1 << 20;
const encoder = new TextEncoder();

export class NativeFront {
  /** The shared counts (pool.ts places requests on them). */
  readonly counts: Int32Array;
  private readonly drainBuffer = new Uint8Array(DRAIN_BYTES);
  private readonly clientBuffer = new Uint8Array(64);
  private readonly decoder = new TextDecoder('latin1');
  /** The pools as last told, so an unchanged pool is not told again. */
  private readonly told = new Map<string, string>();

  private constructor(private readonly lib: Library) {
    const slots = lib.plat_front_slots();
    this.counts = new Int32Array(toArrayBuffer(lib.plat_front_counts() as Pointer, 0, slots * 4));
  }

  /** Loads the library; a clear error when it is not built. */
  static load(path: string): NativeFront {
    if (!existsSync(path)) {
      throw new Error(
        `PLAT_INVOKE_FRONT=native needs the native front's library at ${path}: build it with scripts/native-front.sh (needs cargo), or set PLAT_NATIVE_FRONT_LIB`,
      );
    }
    return new NativeFront(dlopen(path, symbols).symbols);
  }

  /** Takes the public port; the port taken. */
  start(options: NativeStart): number {
    const config = [
      options.hostname,
      options.port,
      options.frontPort,
      options.serverPort,
      options.adminToken,
      options.scheme,
      options.headerLimit,
      options.metrics ? 'on' : 'off',
    ].join('\n');
    const port = this.call(this.lib.plat_front_start, config);
    if (port < 0) throw new Error(this.lastError());
    return port;
  }

  /** Stops taking connections; resolves once the requests under way are answered, or after `waitMs`. */
  async stop(waitMs: number): Promise<void> {
    this.lib.plat_front_stop();
    const deadline = Date.now() + waitMs;
    while (this.lib.plat_front_active() > 0 && Date.now() < deadline) await Bun.sleep(20);
  }

  /** Tells the pool as it is now: its instances (`paused` says which are), its concurrency and timeout. */
  pool(pool: Pool, paused: (containerId: string) => boolean): void {
    let text = `${pool.key}\t${pool.name}\t${pool.version}\t${pool.scale.concurrency}\t${pool.timeoutMs}\t${pool.slot}\n`;
    for (const route of pool.instances) {
      const url = new URL(route.url);
      text += `${route.slot}\t${route.containerId}\t${route.instanceId}\t${url.host}\t${paused(route.containerId) ? 1 : 0}\t${route.socket ?? ''}\n`;
    }
    if (this.told.get(pool.key) === text) return;
    this.told.set(pool.key, text);
    this.call(this.lib.plat_front_pool, text);
  }

  unpool(key: string): void {
    this.told.delete(key);
    this.call(this.lib.plat_front_unpool, key);
  }

  /** Who may invoke `name`: anyone (public), or the holders of its keys (their SHA-256, hex); undefined: ask the gateway. */
  access(name: string, entry: { public: boolean; hashes: Set<string> } | undefined): void {
    if (entry) this.call(this.lib.plat_front_access, `${name}\t${entry.public ? 1 : 0}\t${[...entry.hashes].join(',')}`);
    else this.call(this.lib.plat_front_unaccess, name);
  }

  forget(containerId: string): void {
    this.call(this.lib.plat_front_forget, containerId);
  }

  /** The client a connection from the native front carries now, by its port; undefined for any other. */
  clientOf(port: number): string | undefined {
    const n = Number(this.lib.plat_front_client(port, this.clientBuffer, this.clientBuffer.byteLength));
    return n > 0 ? this.decoder.decode(this.clientBuffer.subarray(0, n)) : undefined;
  }

  /** Hands what the native front did since the last drain to `events`. */
  drain(events: NativeEvents): void {
    for (;;) {
      const n = Number(this.lib.plat_front_records(this.drainBuffer, DRAIN_BYTES));
      if (n > 0) events.records(this.drainBuffer.subarray(0, n));
      if (n < DRAIN_BYTES / 2) break;
    }
    this.lib.plat_front_tally();
    for (;;) {
      const n = Number(this.lib.plat_front_drain(this.drainBuffer, DRAIN_BYTES));
      if (n === 0) return;
      const text = this.decoder.decode(this.drainBuffer.subarray(0, n));
      let at = 0;
      while (at < text.length) {
        const end = text.indexOf('\n', at);
        const f = text.slice(at, end).split('\t');
        at = end + 1;
        switch (f[0]) {
          case 'm':
            events.tally({
              name: f[1] as string,
              codes: (f[2] as string).split(',').map((pair) => pair.split(':').map(Number) as [number, number]),
              buckets: (f[3] as string).split(',').map(Number),
              sum: Number(f[4]),
              count: Number(f[5]),
            });
            break;
          case 'u':
            events.used(f[1] as string, f[2] as string);
            break;
          case 'g':
            events.gone(f[1] as string, f[2] as string, f[3] as string, f[4] ?? 'it failed a request');
            break;
          case 't':
            events.timedOut(f[1] as string, f[2] as string, f[3] as string, f[4] as string, Number(f[5]));
            break;
        }
      }
      if (n < DRAIN_BYTES / 2) return;
    }
  }

  private call(fn: (data: Uint8Array, length: number) => unknown, text: string): number {
    const bytes = encoder.encode(text);
    // An empty array has no memory of its own to point at: one byte, with its length said to be 0.
    return Number(fn(bytes.byteLength > 0 ? bytes : new Uint8Array(1), bytes.byteLength));
  }

  private lastError(): string {
    const buffer = new Uint8Array(1024);
    const n = Number(this.lib.plat_front_error(buffer, buffer.byteLength));
    return new TextDecoder().decode(buffer.subarray(0, n)) || 'the native front could not start';
  }
}
