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

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const COLD_START_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30];
const DEPLOY_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600];
/** Invocation records are written in batches, at most this long after their request. */
const RECORDS_FLUSH_MS = 100;

/**
 * The gateway's Prometheus metrics (prom-client, text format at GET /metrics) and its invocation
 * records (one JSON line per request on standard output). Label children are cached, so a request
 * costs two map lookups and two increments, not a label hash.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly invocations = new Counter({
    name: 'plat_function_invocations_total',
    help: 'Invocations answered, by function and HTTP status code (the platform refusing or failing a request counts with its code).',
    labelNames: ['function', 'code'],
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: 'plat_function_duration_seconds',
    help: "Time from a request's arrival to its answer's status and headers, cold starts included.",
    labelNames: ['function'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
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
  private readonly children = new Map<string, { count: Counter; seconds: Histogram }>();
  private records: string[] = [];
  private flushTimer?: ReturnType<typeof setTimeout>;

  /** `instances` reads the functions' instances by state when Prometheus scrapes. */
  constructor(instances: () => Promise<Array<{ function: string; state: string; count: number }>>) {
    collectDefaultMetrics({ register: this.registry });
    // Gauges that prom-client names like counters, which Prometheus' conventions (and promtool) refuse.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    const registry = this.registry;
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
    const key = `${record.function}\u0000${record.status}`;
    let child = this.children.get(key);
    if (!child) {
      child = {
        count: this.invocations.labels(record.function, String(record.status)) as unknown as Counter,
        seconds: this.duration.labels(record.function) as unknown as Histogram,
      };
      this.children.set(key, child);
    }
    child.count.inc();
    child.seconds.observe(record.durationMs / 1000);
    this.records.push(recordLine(record));
    this.flushTimer ??= setTimeout(() => this.flushRecords(), RECORDS_FLUSH_MS);
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
    if (this.records.length === 0) return;
    const text = `${this.records.join('\n')}\n`;
    this.records = [];
    process.stdout.write(text);
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

/**
 * The record as one JSON line, written out by hand: JSON.stringify of the object cost more than the
 * rest of the record keeping together. Only the path can hold characters that need escaping; names,
 * versions, instance ids, methods (HTTP tokens) and request ids (REQUEST_ID_PATTERN) cannot.
 */
function recordLine(r: InvocationRecord): string {
  const optional =
    (r.version === undefined ? '' : `,"version":"${r.version}"`) +
    (r.instance === undefined ? '' : `,"instance":"${r.instance}"`) +
    (r.start === undefined ? '' : `,"start":"${r.start}"`) +
    (r.bytesIn === undefined ? '' : `,"bytesIn":${r.bytesIn}`) +
    (r.bytesOut === undefined ? '' : `,"bytesOut":${r.bytesOut}`);
  return `{"time":"${r.time}","function":"${r.function}"${optional},"method":"${r.method}","path":${JSON.stringify(r.path)},"status":${r.status},"durationMs":${r.durationMs},"requestId":"${r.requestId}"}`;
}
