import type { TokenCheck } from './auth';
import { Elysia } from 'elysia';
import { PlatError } from '../lib/errors';
import { errorAnswers } from './model';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** How an invocation found its instance. */
export type StartKind = 'warm' | 'cold' | 'resumed';

/** What the gateway writes to its log for every invocation (never the token, never the query string). */
export interface InvocationRecord {
  time: string;
  function: string;
  version?: string;
  instance?: string;
  method: string;
  path: string;
  status: number;
  /** Until the answer's status and headers; a streamed body may go on after. */
  durationMs: number;
  start?: StartKind;
  bytesIn?: number;
  /** The answer's Content-Length, when it has one (a streamed answer does not). */
  bytesOut?: number;
  requestId: string;
}

export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const COLD_START_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30];
const DEPLOY_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600];
/** Invocation records are written in batches, at most this long after their request. */
const RECORDS_FLUSH_MS = 100;
/** Room for the records of a flush; when they take more, they are written at once. */
const RECORDS_BUFFER_BYTES = 256 * 1024;

/**
 * One function's invocations as plain numbers: count by status code, and the latency histogram's
 * buckets (each counts the durations above the bound before it, up to its own; made cumulative when
 * rendered). A request costs two map lookups and a few additions: prom-client's label children cost
 * a quarter of the gateway's hop (a label hash, an object per observation), so the two families
 * counted per request are kept here and rendered by prom-client's registry when Prometheus scrapes.
 */
interface Tally {
  codes: Map<number, number>;
  buckets: Float64Array;
  sum: number;
  count: number;
}

const DURATION = 'plat_function_duration_seconds';

type MetricValue = { labels: Record<string, string | number>; value: number; metricName?: string };

/** `plat_function_invocations_total{function, code}` from the tallies. */
function invocationValues(tallies: Map<string, Tally>): MetricValue[] {
  const values: MetricValue[] = [];
  for (const [name, tally] of tallies) {
    for (const [code, count] of tally.codes) values.push({ labels: { function: name, code: String(code) }, value: count });
  }
  return values;
}

/** `plat_function_duration_seconds{function}` from the tallies, as prom-client's Histogram renders it. */
function durationValues(tallies: Map<string, Tally>): MetricValue[] {
  const values: MetricValue[] = [];
  for (const [name, tally] of tallies) {
    let below = 0;
    LATENCY_BUCKETS.forEach((le, i) => {
      below += tally.buckets[i] as number;
      values.push({ labels: { le, function: name }, value: below, metricName: `${DURATION}_bucket` });
    });
    values.push(
      { labels: { le: '+Inf', function: name }, value: tally.count, metricName: `${DURATION}_bucket` },
      { labels: { function: name }, value: tally.sum, metricName: `${DURATION}_sum` },
      { labels: { function: name }, value: tally.count, metricName: `${DURATION}_count` },
    );
  }
  return values;
}

/**
 * A metric family for prom-client's registry whose values are read from the tallies when it renders
 * (what the registry asks of a metric: its name, type, `get` and `reset`).
 */
function tallied(
  name: string,
  help: string,
  type: 'counter' | 'histogram',
  tallies: Map<string, Tally>,
  values: (tallies: Map<string, Tally>) => MetricValue[],
): Counter {
  const metric = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: values(tallies) }),
    reset: () => tallies.clear(),
  };
  return metric as unknown as Counter;
}

/**
 * The gateway's Prometheus metrics (prom-client, text format at GET /metrics) and its invocation
 * records (one JSON line per request on standard output).
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly coldStarts = new Counter({
    name: 'plat_function_cold_starts_total',
    help: 'Requests that had to wait for an instance to start (one count per start, however many requests waited on it).',
    labelNames: ['function'],
    registers: [this.registry],
  });
  private readonly coldStartSeconds = new Histogram({
    name: 'plat_function_cold_start_seconds',
    help: 'How long a cold start took, seen from the gateway: from asking for an instance to its answering.',
    labelNames: ['function'],
    buckets: COLD_START_BUCKETS,
    registers: [this.registry],
  });
  private readonly resumes = new Counter({
    name: 'plat_function_resumes_total',
    help: 'Paused instances resumed for a request.',
    labelNames: ['function'],
    registers: [this.registry],
  });
  private readonly nativeServed = new Counter({
    name: 'plat_invoke_native_total',
    help: 'Invocations the native invoke front served from end to end (PLAT_INVOKE_FRONT=native), of plat_function_invocations_total.',
    labelNames: ['function'],
    registers: [this.registry],
  });
  private readonly deploys = new Counter({
    name: 'plat_deploys_total',
    help: 'Deploys this gateway started, by result (succeeded, failed), counted when they end.',
    labelNames: ['result'],
    registers: [this.registry],
  });
  private readonly deployDuration = new Histogram({
    name: 'plat_deploy_duration_seconds',
    help: 'How long the deploys this gateway started took, upload to registered.',
    labelNames: ['result'],
    buckets: DEPLOY_BUCKETS,
    registers: [this.registry],
  });
  private readonly calls = new Counter({
    name: 'plat_calls_total',
    help: 'Async calls that ended, by function and result (succeeded, failed), as the worker on this host told it.',
    labelNames: ['function', 'result'],
    registers: [this.registry],
  });
  private readonly callAttempts = new Counter({
    name: 'plat_call_attempts_total',
    help: 'Attempts of async calls, by function and outcome: retry (another follows), succeeded or failed (the call ended).',
    labelNames: ['function', 'outcome'],
    registers: [this.registry],
  });
  /** Each function's invocations, counted in plain numbers (see `Tally`). */
  private readonly tallies = new Map<string, Tally>();
  /**
   * The records not written yet, as UTF-8 bytes: each line is encoded as soon as it is made. Kept as
   * strings until the flush, a second's worth of them cost more than the rest of the metrics together
   * (joining many young strings late, after they were promoted).
   */
  private records = Buffer.allocUnsafe(RECORDS_BUFFER_BYTES);
  private recordsEnd = 0;
  private flushTimer?: ReturnType<typeof setTimeout>;

  /** `instances` reads the functions' instances by state when Prometheus scrapes. */
  constructor(instances: () => Promise<Array<{ function: string; state: string; count: number }>>) {
    collectDefaultMetrics({ register: this.registry });
    // Gauges that prom-client names like counters, which Prometheus' conventions (and promtool) refuse.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    const registry = this.registry;
    const tallies = this.tallies;
    registry.registerMetric(
      tallied(
        'plat_function_invocations_total',
        'Invocations answered, by function and HTTP status code (the platform refusing or failing a request counts with its code).',
        'counter',
        tallies,
        invocationValues,
      ),
    );
    registry.registerMetric(
      tallied(
        DURATION,
        "Time from a request's arrival to its answer's status and headers, cold starts included.",
        'histogram',
        tallies,
        durationValues,
      ),
    );
    new Gauge({
      name: 'plat_function_instances',
      help: "Each function's instances by state (running, paused), as its entity lists them.",
      labelNames: ['function', 'state'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const row of await instances().catch(() => [])) this.set({ function: row.function, state: row.state }, row.count);
      },
    });
  }

  /** One answered invocation: counted, timed, and written as a record. */
  invocation(record: InvocationRecord): void {
    const tally = this.tallyOf(record.function);
    tally.codes.set(record.status, (tally.codes.get(record.status) ?? 0) + 1);
    const seconds = record.durationMs / 1000;
    let bucket = 0;
    while (bucket < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[bucket] as number)) bucket++;
    if (bucket < LATENCY_BUCKETS.length) (tally.buckets[bucket] as number)++;
    tally.sum += seconds;
    tally.count++;
    this.appendRecord(record);
  }

  /** Invocations the native front served (its own tallies since the last drain, gateway/invoke/native.ts) join this gateway's. */
  merge(counted: { name: string; codes: [number, number][]; buckets: number[]; sum: number; count: number }): void {
    const tally = this.tallyOf(counted.name);
    for (const [code, count] of counted.codes) tally.codes.set(code, (tally.codes.get(code) ?? 0) + count);
    for (let i = 0; i < tally.buckets.length; i++) (tally.buckets[i] as number) += counted.buckets[i] ?? 0;
    tally.sum += counted.sum;
    tally.count += counted.count;
    this.nativeServed.inc({ function: counted.name }, counted.count);
  }

  /** Records the native front wrote (whole JSON lines) go out with this gateway's. */
  appendRecords(lines: Uint8Array): void {
    if (this.recordsEnd + lines.byteLength > this.records.byteLength) {
      this.flushRecords();
      if (lines.byteLength > this.records.byteLength) this.records = Buffer.allocUnsafe(lines.byteLength);
    }
    this.records.set(lines, this.recordsEnd);
    this.recordsEnd += lines.byteLength;
    this.flushTimer ??= setTimeout(() => this.flushRecords(), RECORDS_FLUSH_MS);
  }

  private tallyOf(name: string): Tally {
    let tally = this.tallies.get(name);
    if (!tally) {
      tally = { codes: new Map(), buckets: new Float64Array(LATENCY_BUCKETS.length), sum: 0, count: 0 };
      this.tallies.set(name, tally);
    }
    return tally;
  }

  coldStart(name: string, seconds: number): void {
    this.coldStarts.inc({ function: name });
    this.coldStartSeconds.observe({ function: name }, seconds);
  }

  /** An async call's attempt ended (a call-attempt event); the last one ends the call. */
  callAttempt(name: string, outcome: 'succeeded' | 'retry' | 'failed'): void {
    this.callAttempts.inc({ function: name, outcome });
    if (outcome !== 'retry') this.calls.inc({ function: name, result: outcome });
  }

  resume(name: string): void {
    this.resumes.inc({ function: name });
  }

  deploy(result: 'succeeded' | 'failed', seconds: number): void {
    this.deploys.inc({ result });
    this.deployDuration.observe({ result }, seconds);
  }

  flushRecords(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.recordsEnd === 0) return;
    // Copied: the buffer is written to again before an asynchronous write may have read it.
    const bytes = Buffer.from(this.records.subarray(0, this.recordsEnd));
    this.recordsEnd = 0;
    process.stdout.write(bytes);
  }

  /** Writes the record's line into the records' buffer, flushed first when it has no room for it. */
  private appendRecord(record: InvocationRecord): void {
    const room = recordRoom(record);
    if (this.recordsEnd + room > this.records.byteLength) {
      this.flushRecords();
      if (room > this.records.byteLength) this.records = Buffer.allocUnsafe(room);
    }
    this.recordsEnd = writeRecord(this.records, this.recordsEnd, record);
    this.flushTimer ??= setTimeout(() => this.flushRecords(), RECORDS_FLUSH_MS);
  }
}

/** `GET /metrics`: the Prometheus text format, behind the bearer token (Prometheus sends it with `authorization.credentials_file`). */
export function metricsRoutes(metrics: GatewayMetrics | undefined, checkToken: TokenCheck) {
  return new Elysia({ name: 'metrics' }).get(
    '/metrics',
    async () => {
      if (!metrics) throw new PlatError('NOT_FOUND', 'metrics are off on this gateway (PLAT_METRICS=off)');
      return new Response(await metrics.registry.metrics(), { headers: { 'content-type': metrics.registry.contentType } });
    },
    {
      transform: checkToken,
      detail: {
        summary: "The gateway's metrics, in the Prometheus text format",
        responses: {
          200: { description: 'Prometheus exposition format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } },
          ...errorAnswers(401, 404),
        },
      },
    },
  );
}

/** At most how many bytes a record's line takes (a path's character may take six as JSON, three in UTF-8). */
function recordRoom(r: InvocationRecord): number {
  return 320 + r.function.length + (r.version?.length ?? 0) + r.method.length + r.path.length * 6 + r.requestId.length;
}

/**
 * The record as one JSON line and its newline, written into `bytes` from `at` by hand, character by
 * character; returns where it ends (`recordRoom` bytes must be free). Made as a string first, the
 * line cost more than the rest of the record keeping together (a string made of pieces, flattened
 * and encoded when written). Only the path can hold characters that JSON escapes or that are not
 * ASCII; names, versions, instance ids, methods (HTTP tokens) and request ids (REQUEST_ID_PATTERN) cannot.
 */
export function writeRecord(bytes: Buffer, at: number, r: InvocationRecord): number {
  let end = ascii(bytes, at, '{"time":"');
  end = ascii(bytes, end, r.time);
  end = ascii(bytes, end, '","function":"');
  end = ascii(bytes, end, r.function);
  if (r.version !== undefined) {
    end = ascii(bytes, end, '","version":"');
    end = ascii(bytes, end, r.version);
  }
  if (r.instance !== undefined) {
    end = ascii(bytes, end, '","instance":"');
    end = ascii(bytes, end, r.instance);
  }
  if (r.start !== undefined) {
    end = ascii(bytes, end, '","start":"');
    end = ascii(bytes, end, r.start);
  }
  bytes[end++] = 0x22;
  if (r.bytesIn !== undefined) {
    end = ascii(bytes, end, ',"bytesIn":');
    end = ascii(bytes, end, String(r.bytesIn));
  }
  if (r.bytesOut !== undefined) {
    end = ascii(bytes, end, ',"bytesOut":');
    end = ascii(bytes, end, String(r.bytesOut));
  }
  end = ascii(bytes, end, ',"method":"');
  end = ascii(bytes, end, r.method);
  end = ascii(bytes, end, '","path":');
  end = jsonString(bytes, end, r.path);
  end = ascii(bytes, end, ',"status":');
  end = ascii(bytes, end, String(r.status));
  end = ascii(bytes, end, ',"durationMs":');
  end = ascii(bytes, end, String(r.durationMs));
  end = ascii(bytes, end, ',"requestId":"');
  end = ascii(bytes, end, r.requestId);
  end = ascii(bytes, end, '"}\n');
  return end;
}

/** Writes `text` as a JSON string: by hand when it is plain ASCII that needs no escape, else as JSON.stringify gives it. */
function jsonString(bytes: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) return ascii(bytes, at, JSON.stringify(text));
  }
  bytes[at] = 0x22;
  const end = ascii(bytes, at + 1, text);
  bytes[end] = 0x22;
  return end + 1;
}

/** Writes `text` into `bytes` at `at` (UTF-8: byte by byte while it is ASCII, as it nearly always is); returns the end. */
function ascii(bytes: Buffer, at: number, text: string): number {
  let end = at;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return end + bytes.write(text.slice(i), end);
    bytes[end++] = code;
  }
  return end;
}
