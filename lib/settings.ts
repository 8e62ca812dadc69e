/**
 * The platform's settings: what the environment configures (read once, by loadSettings) and the
 * limits and timings every part agrees on, each with its reason. Pure: no I/O and nothing read at
 * import time, so workflow code may import the constants too.
 */

const MiB = 1024 * 1024;

/** The local stack's development token: what `npm start` gives the gateway when AUTH_TOKEN is unset. */
export const DEV_TOKEN = 'dev-token';
export const DEFAULT_API_URL = 'http://localhost:8080';

export const LIMITS = {
  /**
   * The largest request body the gateway reads: a deploy upload (the archive below plus
   * function.json and multipart framing), and an invocation's body (proxied as a stream).
   */
  requestBodyBytes: 80 * MiB,
  /** A deploy's archive as uploaded (compressed): larger folders list their big files in .platignore. */
  archiveBytes: 64 * MiB,
  /** What an archive may unpack to, against zip bombs. */
  unpackedBytes: 256 * MiB,
  unpackedFiles: 10_000,
  /**
   * function.json as uploaded. It travels in every Temporal payload of the deploy and of the
   * function's entity (which refuses payloads over 2 MB), so it stays small.
   */
  functionJsonBytes: 64 * 1024,
  /**
   * A function's `env`, names and values together. Linux refuses a single variable over 128 KiB
   * when it starts the process ("argument list too long"), and every byte is repeated in the entity's
   * state for each of the versions it keeps.
   */
  envBytes: 32 * 1024,
  /**
   * A request's headers, names and values together: past this the gateway answers 431 in the JSON
   * error shape. Bun's own parser is started with room to spare (GATEWAY_BUN_FLAGS), so it is the
   * gateway that refuses, not the parser with an empty answer.
   */
  headerBytes: 64 * 1024,
} as const;

/** How every gateway process is started by `bun`: a header parser roomier than LIMITS.headerBytes (see there). */
export const GATEWAY_BUN_FLAGS = ['--max-http-header-size=4194304'];
/**
 * And with this environment: Bun's fetch holds to 256 requests at once by default and queues the
 * rest inside fetch, out of the gateway's sight (and inside its timeouts); a gateway in front of up
 * to `scale.max` instances of `scale.concurrency` each needs more (scripts/start.sh sets the same).
 */
export const GATEWAY_ENV = { BUN_CONFIG_MAX_HTTP_REQUESTS: '4096' };

/** How often a gateway re-reads the entities of the functions it routes to (the fallback to pushed events). */
export const ROUTE_REVALIDATE_MS = 3000;

/**
 * How long a replaced version's containers keep running after the switch: a gateway that missed
 * the pushed change notices it at its next revalidation, so requests it routed there still land.
 */
export const DRAIN_MS = ROUTE_REVALIDATE_MS + 2000;

/**
 * How often a gateway tells the entities which instances served requests (one signal per function
 * with traffic, never one per request): the idle rules count from the last use it reports.
 */
export const USAGE_REPORT_MS = 2000;

/** Settings of the gateway and worker processes, from the environment (see README). */
export interface Settings {
  temporalAddress: string;
  temporalNamespace: string;
  taskQueue: string;
  /** host:port of the registry as Docker sees it, e.g. localhost:5001 */
  registry: string;
  dataDir: string;
  /** The gateway's address. */
  host: string;
  port: number;
  /** Undefined when AUTH_TOKEN is unset; the local stack sets a default. */
  authToken?: string;
  /** Where the worker publishes container events that gateways on this host subscribe to. */
  eventsSocket: string;
  /**
   * How long a function container that exited stays before the worker removes it (its log is read
   * meanwhile, e.g. the log of a start that failed); one never started stays twice as long.
   */
  reapAfterMs: number;
  /**
   * The registry's garbage collection: the local registry's config file (npm start's), or the
   * registry's container (compose), in which `registry garbage-collect` runs; and how often.
   */
  registryGc: { config: string; container?: string; every: string };
  /** How many versions a function keeps (PLAT_VERSIONS_KEPT); an older one is deleted from the registry and the engine. */
  versionsKept: number;
  /** Base images that replace a runtime's default (PLAT_BASE_IMAGE_<RUNTIME>, e.g. PLAT_BASE_IMAGE_PYTHON_FLASK). */
  baseImages: Record<string, string>;
  /**
   * Functions' logs (lib/logs.ts): kept per function up to PLAT_LOG_MAX_MB (50) and PLAT_LOG_RETENTION
   * (24h); a container may write PLAT_LOG_RATE lines a second (1000, bursts of 5 s), the rest is dropped and said so.
   */
  logs: { maxBytes: number; maxAgeMs: number; linesPerSecond: number };
  /** How long an async call's bodies are kept in the registry (PLAT_CALL_RETENTION, default 24h: Temporal's retention of its history). */
  callRetentionMs: number;
  /** How long a request waits for an instance to start before it is answered 503 (the start goes on). */
  coldStartWaitMs: number;
  /** Whether async calls' callbacks may go to this host, loopback and link-local addresses (lib/callback-policy.ts). */
  callbackAllowLocal: boolean;
  /** The gateway's per-request metrics and invocation records (PLAT_METRICS=off turns them off, to measure their cost). */
  metrics: boolean;
  /**
   * Whether the gateway's port is served by the invoke front (gateway/invoke/front.ts: plain HTTP/1.1
   * on Bun's sockets for /function/*, the rest passed to the API server on loopback); PLAT_INVOKE_FRONT=off
   * serves everything from Bun's HTTP server, as with TLS, where the front is not used.
   */
  invokeFront: boolean;
  /**
   * Whether the gateway's port is served by the native front (gateway/native, loaded from
   * `nativeFrontLib`), with the Bun front behind it on loopback for what it does not decide: by
   * default when the library is built (`auto`), always with PLAT_INVOKE_FRONT=native (`required`),
   * never with PLAT_INVOKE_FRONT=on (the Bun front alone) or off. Not with TLS, which it does not end.
   */
  nativeFront: 'auto' | 'required' | 'off';
  /** The native front's library (PLAT_NATIVE_FRONT_LIB; scripts/native-front.sh builds it there). */
  nativeFrontLib: string;
  /** Where the worker serves the Temporal SDK's Prometheus metrics (PLAT_WORKER_METRICS, host:port; "off" for none). */
  workerMetrics?: string;
  /** The gateway serves HTTPS itself with these (TLS_CERT_FILE and TLS_KEY_FILE, PEM; both or neither). */
  tls?: { certFile: string; keyFile: string };
  /**
   * Bearer JWTs the gateway accepts besides the admin token and invoke keys: signed by a key of
   * JWT_JWKS_URL or the PEM public key in JWT_PUBLIC_KEY_FILE, from JWT_ISSUER, for JWT_AUDIENCE.
   */
  jwt?: { jwksUrl?: string; publicKeyFile?: string; issuer: string; audience: string };
}

/** `90`, `90s`, `10m`, `24h`, `7d` as milliseconds (a bare number is seconds); undefined when it is none of these. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

function durationSetting(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined || value === '') return fallback;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) throw new Error(`${what} must be a duration such as 24h or 7d, not "${value}"`);
  return ms;
}

/** PLAT_INVOKE_FRONT: unset (the native front when it is built, else the Bun one), native, on (the Bun front) or off. */
function frontSettings(value: string | undefined): Pick<Settings, 'invokeFront' | 'nativeFront'> {
  if (value === undefined || value === '') return { invokeFront: true, nativeFront: 'auto' };
  if (value === 'native') return { invokeFront: true, nativeFront: 'required' };
  if (value === 'on' || value === 'off') return { invokeFront: value === 'on', nativeFront: 'off' };
  throw new Error(`PLAT_INVOKE_FRONT must be native, on or off, not "${value}"`);
}

function positive(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${what} must be a positive number, not "${value}"`);
  return n;
}

export function loadSettings(env: Record<string, string | undefined> = process.env): Settings {
  const dataDir = env.PLAT_HOME || `${env.HOME || '/root'}/.plat`;
  const baseImages: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    const match = /^PLAT_BASE_IMAGE_([A-Z0-9_]+)$/.exec(key);
    if (match?.[1] && value) baseImages[match[1].toLowerCase().replaceAll('_', '-')] = value;
  }
  return {
    temporalAddress: env.TEMPORAL_ADDRESS || '127.0.0.1:7233',
    temporalNamespace: env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: taskQueueSetting(env.PLAT_TASK_QUEUE),
    registry: env.REGISTRY || 'localhost:5001',
    dataDir,
    host: env.HOST || '127.0.0.1',
    port: Number(env.PORT || 8080),
    authToken: env.AUTH_TOKEN || undefined,
    eventsSocket: env.PLAT_EVENTS_SOCKET || `${dataDir}/run/events.sock`,
    reapAfterMs: Number(env.PLAT_REAP_AFTER_SECONDS || 60) * 1000,
    versionsKept: Math.max(2, Number(env.PLAT_VERSIONS_KEPT || 20)),
    registryGc: {
      config: env.PLAT_REGISTRY_CONFIG || `${dataDir}/registry.yml`,
      container: env.PLAT_REGISTRY_CONTAINER || undefined,
      every: env.PLAT_REGISTRY_GC_EVERY || '1h',
    },
    baseImages,
    logs: {
      maxBytes: positive(env.PLAT_LOG_MAX_MB, 50, 'PLAT_LOG_MAX_MB') * MiB,
      maxAgeMs: logRetention(env.PLAT_LOG_RETENTION),
      linesPerSecond: positive(env.PLAT_LOG_RATE, 1000, 'PLAT_LOG_RATE'),
    },
    callRetentionMs: durationSetting(env.PLAT_CALL_RETENTION, 24 * 3_600_000, 'PLAT_CALL_RETENTION'),
    coldStartWaitMs: durationSetting(env.PLAT_COLD_START_WAIT, 60_000, 'PLAT_COLD_START_WAIT'),
    callbackAllowLocal: env.PLAT_CALLBACK_ALLOW_LOCAL === 'true',
    metrics: env.PLAT_METRICS !== 'off',
    ...frontSettings(env.PLAT_INVOKE_FRONT),
    nativeFrontLib:
      env.PLAT_NATIVE_FRONT_LIB ||
      `${env.PLAT_CACHE || `${env.XDG_CACHE_HOME || `${env.HOME || '/root'}/.cache`}/plat`}/native-front/release/libplat_front.so`,
    workerMetrics: env.PLAT_WORKER_METRICS === 'off' ? undefined : env.PLAT_WORKER_METRICS || '127.0.0.1:9464',
    tls: tlsFiles(env.TLS_CERT_FILE, env.TLS_KEY_FILE),
    jwt: jwtSettings(env),
  };
}

/**
 * The task queue names this platform: its workflows, its schedules and what its gateways list. It
 * goes into visibility queries, so only letters, digits, dots, dashes and underscores.
 */
function taskQueueSetting(value: string | undefined): string {
  if (value === undefined || value === '') return 'plat';
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(value)) {
    throw new Error(`PLAT_TASK_QUEUE may hold letters, digits, ".", "-" and "_" (200 at most), not "${value.slice(0, 100)}"`);
  }
  return value;
}

function jwtSettings(env: Record<string, string | undefined>): Settings['jwt'] {
  const { JWT_JWKS_URL: jwksUrl, JWT_PUBLIC_KEY_FILE: publicKeyFile, JWT_ISSUER: issuer, JWT_AUDIENCE: audience } = env;
  if (!jwksUrl && !publicKeyFile) {
    if (issuer || audience) throw new Error('JWT_ISSUER and JWT_AUDIENCE need JWT_JWKS_URL or JWT_PUBLIC_KEY_FILE');
    return undefined;
  }
  if (jwksUrl && publicKeyFile) throw new Error('set JWT_JWKS_URL or JWT_PUBLIC_KEY_FILE, not both');
  if (!issuer || !audience)
    throw new Error('JWTs need JWT_ISSUER and JWT_AUDIENCE too: a token is accepted only from that issuer, for that audience');
  return { jwksUrl: jwksUrl || undefined, publicKeyFile: publicKeyFile || undefined, issuer, audience };
}

function tlsFiles(certFile: string | undefined, keyFile: string | undefined): Settings['tls'] {
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw new Error('set both TLS_CERT_FILE and TLS_KEY_FILE (PEM files) to serve HTTPS, or neither');
  return { certFile, keyFile };
}

function logRetention(value: string | undefined): number {
  if (!value) return 24 * 3_600_000;
  const ms = parseDuration(value);
  if (!ms) throw new Error(`PLAT_LOG_RETENTION must be a duration such as 24h or 7d, not "${value}"`);
  return ms;
}

/** The registry's HTTP base URL: registries on loopback speak plain HTTP. */
/** The scheme the gateway's clients use: https when it has a certificate (for links and `x-forwarded-proto`). */
export function publicScheme(settings: Pick<Settings, 'tls'>): 'http' | 'https' {
  return settings.tls ? 'https' : 'http';
}

export function registryUrl(registry: string): string {
  return `http://${registry}`;
}
