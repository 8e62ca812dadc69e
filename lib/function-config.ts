import { functionNameProblem, secretNameProblem } from './names';
import { RUNTIME_NAMES, RUNTIMES } from './runtimes';
import { LIMITS, parseDuration } from './settings';

/** function.json, as the user writes it and as the platform stores it (defaults filled in). */
export interface FunctionConfig {
  name: string;
  runtime: string;
  /** The file that default-exports `{ fetch(request) }`, relative to the function folder. */
  entry: string;
  env: Record<string, string>;
  /** Memory limit in MiB. */
  memory: number;
  /** CPU limit in cores (fractions allowed). */
  cpu: number;
  /** Longest time one request may take, in seconds. */
  timeout: number;
  /** The idle rules (see ScaleConfig). */
  scale: ScaleConfig;
  /**
   * Who may invoke it: `key` (the default) asks for the admin token or one of the function's invoke
   * keys; `public` asks for nothing. Versions deployed before this field existed have none: `key`.
   */
  access?: Access;
  /** Secrets (by name) mounted read-only at /var/plat/secrets/<name>; their values never pass through here. */
  secrets?: string[];
  /** `none`: no outbound network at all (the gateway still reaches it). Absent: outbound access on. */
  network?: 'none';
  /** How async calls (POST /async-function/NAME) are retried. Versions deployed before it have none: the defaults. */
  async?: AsyncConfig;
  /** Calls made on a schedule, through the async call path (Temporal Schedules). */
  schedules?: ScheduleConfig[];
}

/**
 * One schedule: a cron expression (5 fields) or `every` (a duration), in `timezone` (default UTC);
 * each run is an async call of `method` `path` with `body`. `overlap`: what a run does while the
 * previous one still goes: `skip` it (the default), `bufferOne` (run once after), or `allow`.
 */
export interface ScheduleConfig {
  cron?: string;
  every?: string;
  timezone?: string;
  path: string;
  method: string;
  body?: string;
  overlap: ScheduleOverlap;
}

export type ScheduleOverlap = 'skip' | 'bufferOne' | 'allow';
const OVERLAPS: readonly ScheduleOverlap[] = ['skip', 'bufferOne', 'allow'];
const SCHEDULE_KEYS = ['cron', 'every', 'timezone', 'path', 'method', 'body', 'overlap'];
const SCHEDULE_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
export const MAX_SCHEDULES = 10;
/** A cron expression's five fields (minute hour day-of-month month day-of-week), or a @-shorthand. */
const CRON_PATTERN = /^(?:@(?:yearly|annually|monthly|weekly|daily|hourly)|(?:[0-9A-Za-z*/,?#LW-]+\s+){4}[0-9A-Za-z*/,?#LW-]+)$/;

/**
 * An async call's retries: up to `retries` more attempts after the first, on a connection failure,
 * 429, 502, 503 or 504, waiting `backoff` before the second and twice as long before each next one,
 * at most `maxBackoff` (durations such as "500ms", "1s", "1m").
 */
export interface AsyncConfig {
  retries: number;
  backoff: string;
  maxBackoff: string;
}

export const ASYNC_DEFAULTS: AsyncConfig = { retries: 5, backoff: '1s', maxBackoff: '1m' };
const ASYNC_LIMITS = { retries: 20, backoffMs: { min: 10, max: 3_600_000 } } as const;

/** A version's async rules, with the defaults of those it was deployed without. */
export function asyncOf(config: { async?: Partial<AsyncConfig> } | undefined): AsyncConfig {
  return { ...ASYNC_DEFAULTS, ...config?.async };
}

export type Access = 'key' | 'public';
export const ACCESS_MODES: readonly Access[] = ['key', 'public'];

/**
 * How a function scales. Out, on concurrency: an instance takes `concurrency` requests at once; when
 * every instance is at it, the gateway starts another, up to `max`, and up to `queue` requests wait
 * for a free place beyond what the instances (running and starting) take; past that, 429. In, when
 * idle, in seconds without requests: a running instance is paused (`docker pause`: memory kept, no
 * CPU; the next request resumes it in milliseconds) after `pauseAfter`, and stopped and removed
 * after `stopAfter` in all (the next request cold-starts). `min` instances of the active version are
 * kept running, never paused. 0 turns an idle rule off.
 */
export interface ScaleConfig {
  min: number;
  pauseAfter: number;
  stopAfter: number;
  concurrency: number;
  max: number;
  queue: number;
}

export const SCALE_DEFAULTS: ScaleConfig = { min: 0, pauseAfter: 30, stopAfter: 600, concurrency: 100, max: 10, queue: 100 };
/**
 * Bounds of the scale rules. The gateways report use every few seconds (USAGE_REPORT_MS), so an idle
 * rule shorter than 5 s could pause an instance between two requests of a steady stream.
 */
export const SCALE_LIMITS = {
  min: { min: 0, max: 10 },
  idle: { min: 5, max: 7 * 24 * 3600 },
  concurrency: { min: 1, max: 10_000 },
  max: { min: 1, max: 100 },
  queue: { min: 0, max: 10_000 },
} as const;

/** A version's scale rules with the defaults of fields it was deployed without (versions older than them). */
export function scaleOf(config: { scale?: Partial<ScaleConfig> } | undefined): ScaleConfig {
  return { ...SCALE_DEFAULTS, ...config?.scale };
}

export const CONFIG_DEFAULTS = { memory: 256, cpu: 1, timeout: 30 } as const;
export const CONFIG_LIMITS = {
  memory: { min: 32, max: 8192 },
  cpu: { min: 0.05, max: 8 },
  timeout: { min: 1, max: 900 },
} as const;

const KNOWN_KEYS = [
  'name',
  'runtime',
  'entry',
  'env',
  'memory',
  'cpu',
  'timeout',
  'scale',
  'access',
  'secrets',
  'network',
  'async',
  'schedules',
];
/** Secrets a function may mount. */
const MAX_SECRETS = 20;
const ENTRY_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$/;
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED_ENV = new Set(['PORT', 'PLAT_ENTRY', 'HOME']);

export type ConfigResult = { ok: true; config: FunctionConfig } | { ok: false; problems: string[] };

function numberField(raw: Record<string, unknown>, key: 'memory' | 'cpu' | 'timeout', problems: string[]): number {
  // null is a value, and a wrong one: only a missing field takes the default.
  const value = raw[key] === undefined ? CONFIG_DEFAULTS[key] : raw[key];
  const { min, max } = CONFIG_LIMITS[key];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    problems.push(`${key} must be a number from ${min} to ${max} (got ${JSON.stringify(raw[key])})`);
    return CONFIG_DEFAULTS[key];
  }
  return value;
}

/** Checks a parsed function.json and fills in defaults; lists every problem, not just the first. */
export function validateFunctionConfig(raw: unknown): ConfigResult {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, problems: ['function.json must hold a JSON object'] };
  }
  const input = raw as Record<string, unknown>;
  const problems: string[] = [];

  const nameProblem = functionNameProblem(input.name);
  if (nameProblem) problems.push(nameProblem);

  const runtime = input.runtime === undefined ? 'bun' : input.runtime;
  if (typeof runtime !== 'string' || !RUNTIME_NAMES.includes(runtime)) {
    problems.push(`runtime ${JSON.stringify(runtime)} is not supported; use one of: ${RUNTIME_NAMES.join(', ')}`);
  }
  const runtimeInfo = typeof runtime === 'string' ? RUNTIMES[runtime] : undefined;

  const entry = input.entry === undefined ? (runtimeInfo?.defaultEntry ?? 'index.ts') : input.entry;
  if (typeof entry !== 'string' || !ENTRY_PATTERN.test(entry) || entry.split('/').includes('..')) {
    problems.push(`entry ${JSON.stringify(entry)} must be a relative path inside the function folder`);
  }

  const env: Record<string, string> = {};
  if (input.env !== undefined) {
    if (typeof input.env !== 'object' || input.env === null || Array.isArray(input.env)) {
      problems.push('env must be an object of names to string values');
    } else {
      for (const [key, value] of Object.entries(input.env)) {
        if (!ENV_NAME_PATTERN.test(key)) problems.push(`env name "${key}" is not a valid variable name`);
        else if (RESERVED_ENV.has(key)) problems.push(`env name "${key}" is reserved by the platform`);
        else if (typeof value !== 'string') problems.push(`env value of "${key}" must be a string`);
        else env[key] = value;
      }
    }
  }

  const envBytes = Object.entries(env).reduce((sum, [k, v]) => sum + new TextEncoder().encode(`${k}=${v}`).byteLength, 0);
  if (envBytes > LIMITS.envBytes) {
    problems.push(`env is ${(envBytes / 1024).toFixed(1)} KiB; names and values together may take ${LIMITS.envBytes / 1024} KiB`);
  }

  const memory = numberField(input, 'memory', problems);
  const cpu = numberField(input, 'cpu', problems);
  const timeout = numberField(input, 'timeout', problems);

  const scale = scaleField(input.scale, problems);
  const asyncRules = asyncField(input.async, problems);
  const schedules = schedulesField(input.schedules, problems);
  const secrets = input.secrets === undefined ? [] : input.secrets;
  if (!Array.isArray(secrets) || secrets.length > MAX_SECRETS) {
    problems.push(`secrets must be a list of at most ${MAX_SECRETS} secret names, such as ["db-password"]`);
  } else {
    for (const secret of secrets) {
      const problem = secretNameProblem(secret);
      if (problem) problems.push(`secrets: ${problem}`);
    }
    if (new Set(secrets).size !== secrets.length) problems.push('secrets names a secret twice');
  }
  if (input.network !== undefined && input.network !== 'none' && input.network !== 'outbound') {
    problems.push(`network must be "none" (no outbound access) or "outbound" (the default), not ${JSON.stringify(input.network)}`);
  }
  const access = input.access === undefined ? 'key' : input.access;
  if (!ACCESS_MODES.includes(access as Access)) {
    problems.push(
      `access must be "key" (callers need a key or the admin token) or "public" (anyone may call it), not ${JSON.stringify(input.access)}`,
    );
  }

  for (const key of Object.keys(input)) {
    if (!KNOWN_KEYS.includes(key)) problems.push(`unknown field "${key}" (known: ${KNOWN_KEYS.join(', ')})`);
  }

  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    config: {
      name: input.name as string,
      runtime: runtime as string,
      entry: entry as string,
      env,
      memory,
      cpu,
      timeout,
      scale,
      access: access as Access,
      ...(Array.isArray(secrets) && secrets.length > 0 ? { secrets: secrets as string[] } : {}),
      ...(input.network === 'none' ? { network: 'none' as const } : {}),
      ...(asyncRules ? { async: asyncRules } : {}),
      ...(schedules.length > 0 ? { schedules } : {}),
    },
  };
}

/** `schedules`: a list of at most MAX_SCHEDULES, each checked, defaults filled in. */
function schedulesField(raw: unknown, problems: string[]): ScheduleConfig[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || raw.length > MAX_SCHEDULES) {
    problems.push(`schedules must be a list of at most ${MAX_SCHEDULES}, such as [{ "cron": "*/5 * * * *", "path": "/tick" }]`);
    return [];
  }
  return raw.flatMap((item: unknown, index): ScheduleConfig[] => {
    const at = `schedules[${index}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      problems.push(`${at} must be an object such as { "every": "30s", "path": "/tick" }`);
      return [];
    }
    const input = item as Record<string, unknown>;
    const before = problems.length;
    for (const key of Object.keys(input)) {
      if (!SCHEDULE_KEYS.includes(key)) problems.push(`unknown field "${at}.${key}" (known: ${SCHEDULE_KEYS.join(', ')})`);
    }
    const { cron, every, timezone, path = '/', method = 'POST', body, overlap = 'skip' } = input;
    if ((cron === undefined) === (every === undefined)) problems.push(`${at} needs either "cron" or "every"`);
    if (cron !== undefined && (typeof cron !== 'string' || !CRON_PATTERN.test(cron.trim()))) {
      problems.push(`${at}.cron must be a cron expression of five fields, such as "*/5 * * * *" (got ${JSON.stringify(cron)})`);
    }
    const everyMs = typeof every === 'string' ? parseDuration(every) : undefined;
    if (every !== undefined && (everyMs === undefined || everyMs < 1000 || everyMs > 366 * 86_400_000)) {
      problems.push(`${at}.every must be a duration of at least 1s, such as "30s" or "1h" (got ${JSON.stringify(every)})`);
    }
    if (timezone !== undefined && (typeof timezone !== 'string' || !isTimeZone(timezone))) {
      problems.push(`${at}.timezone must be an IANA time zone such as "Europe/Paris" (got ${JSON.stringify(timezone)})`);
    }
    if (typeof path !== 'string' || !path.startsWith('/') || /\s/.test(path) || path.length > 2048) {
      problems.push(`${at}.path must be a path starting with "/" (got ${JSON.stringify(path)})`);
    }
    if (typeof method !== 'string' || !SCHEDULE_METHODS.includes(method)) {
      problems.push(`${at}.method must be one of ${SCHEDULE_METHODS.join(', ')} (got ${JSON.stringify(method)})`);
    }
    if (body !== undefined && (typeof body !== 'string' || body.length > 16 * 1024))
      problems.push(`${at}.body must be a string of at most 16 KiB`);
    if (!OVERLAPS.includes(overlap as ScheduleOverlap)) {
      problems.push(`${at}.overlap must be one of ${OVERLAPS.join(', ')} (got ${JSON.stringify(overlap)})`);
    }
    if (problems.length > before) return [];
    return [
      {
        ...(cron !== undefined ? { cron: (cron as string).trim() } : { every: every as string }),
        ...(timezone !== undefined ? { timezone: timezone as string } : {}),
        path: path as string,
        method: method as string,
        ...(body !== undefined ? { body: body as string } : {}),
        overlap: overlap as ScheduleOverlap,
      },
    ];
  });
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** `async`: retries (a whole number) and two durations, each optional, defaults filled in; absent stays absent. */
function asyncField(raw: unknown, problems: string[]): AsyncConfig | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push('async must be an object such as { "retries": 5, "backoff": "1s", "maxBackoff": "1m" }');
    return undefined;
  }
  const input = raw as Record<string, unknown>;
  const rules = { ...ASYNC_DEFAULTS };
  for (const key of Object.keys(input)) {
    if (!(key in ASYNC_DEFAULTS)) problems.push(`unknown field "async.${key}" (known: ${Object.keys(ASYNC_DEFAULTS).join(', ')})`);
  }
  if (input.retries !== undefined) {
    const n = input.retries;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > ASYNC_LIMITS.retries) {
      problems.push(`async.retries must be a whole number from 0 to ${ASYNC_LIMITS.retries} (got ${JSON.stringify(n)})`);
    } else rules.retries = n;
  }
  const { min, max } = ASYNC_LIMITS.backoffMs;
  for (const key of ['backoff', 'maxBackoff'] as const) {
    if (input[key] === undefined) continue;
    const ms = typeof input[key] === 'string' ? parseDuration(input[key]) : undefined;
    if (ms === undefined || ms < min || ms > max) {
      problems.push(
        `async.${key} must be a duration from ${min}ms to 1h, such as "500ms", "1s" or "1m" (got ${JSON.stringify(input[key])})`,
      );
    } else rules[key] = input[key] as string;
  }
  if ((parseDuration(rules.maxBackoff) ?? 0) < (parseDuration(rules.backoff) ?? 0)) {
    problems.push(`async.maxBackoff (${rules.maxBackoff}) must not be shorter than async.backoff (${rules.backoff})`);
  }
  return rules;
}

/** `scale`: an object of whole seconds (and a count), each field optional, defaults filled in. */
function scaleField(raw: unknown, problems: string[]): ScaleConfig {
  if (raw === undefined) return { ...SCALE_DEFAULTS };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push('scale must be an object such as { "min": 0, "max": 10, "concurrency": 100, "pauseAfter": 30, "stopAfter": 600 }');
    return { ...SCALE_DEFAULTS };
  }
  const input = raw as Record<string, unknown>;
  const scale = { ...SCALE_DEFAULTS };
  for (const key of Object.keys(input)) {
    if (!(key in SCALE_DEFAULTS)) problems.push(`unknown field "scale.${key}" (known: ${Object.keys(SCALE_DEFAULTS).join(', ')})`);
  }
  const whole = (key: keyof ScaleConfig, ok: (n: number) => boolean, rule: string) => {
    const value = input[key] === undefined ? SCALE_DEFAULTS[key] : input[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || !ok(value)) {
      problems.push(`scale.${key} must be ${rule} (got ${JSON.stringify(input[key])})`);
    } else scale[key] = value;
  };
  const { min, idle } = SCALE_LIMITS;
  whole('min', (n) => n >= min.min && n <= min.max, `a whole number from ${min.min} to ${min.max}`);
  for (const key of ['concurrency', 'max', 'queue'] as const) {
    const { min: low, max: high } = SCALE_LIMITS[key];
    whole(key, (n) => n >= low && n <= high, `a whole number from ${low} to ${high}`);
  }
  if (scale.min > scale.max) problems.push(`scale.min (${scale.min}) must not be more than scale.max (${scale.max})`);
  const idleRule = `0 (never) or whole seconds from ${idle.min} to ${idle.max}`;
  const idleOk = (n: number) => n === 0 || (n >= idle.min && n <= idle.max);
  whole('pauseAfter', idleOk, idleRule);
  whole('stopAfter', idleOk, idleRule);
  if (scale.pauseAfter > 0 && scale.stopAfter > 0 && scale.stopAfter < scale.pauseAfter) {
    problems.push(`scale.stopAfter (${scale.stopAfter}) must not be shorter than scale.pauseAfter (${scale.pauseAfter})`);
  }
  return scale;
}

/** Parses function.json text; JSON syntax errors become one problem. */
export function parseFunctionConfig(text: string): ConfigResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { ok: false, problems: [`function.json is not valid JSON: ${(error as Error).message}`] };
  }
  return validateFunctionConfig(raw);
}

export function describeProblems(problems: string[]): string {
  return problems.length === 1
    ? `function.json: ${problems[0]}`
    : `function.json has ${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join('\n')}`;
}
