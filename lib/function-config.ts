import { functionNameProblem } from './names';
import { RUNTIME_NAMES, RUNTIMES } from './runtimes';
import { LIMITS } from './settings';

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
}

export const CONFIG_DEFAULTS = { memory: 256, cpu: 1, timeout: 30 } as const;
export const CONFIG_LIMITS = {
  memory: { min: 32, max: 8192 },
  cpu: { min: 0.05, max: 8 },
  timeout: { min: 1, max: 900 },
} as const;

const KNOWN_KEYS = ['name', 'runtime', 'entry', 'env', 'memory', 'cpu', 'timeout'];
const ENTRY_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$/;
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED_ENV = new Set(['PORT', 'PLAT_ENTRY', 'HOME']);

export type ConfigResult = { ok: true; config: FunctionConfig } | { ok: false; problems: string[] };

function numberField(raw: Record<string, unknown>, key: 'memory' | 'cpu' | 'timeout', problems: string[]): number {
  const value = raw[key] ?? CONFIG_DEFAULTS[key];
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

  const runtime = input.runtime ?? 'bun';
  if (typeof runtime !== 'string' || !RUNTIME_NAMES.includes(runtime)) {
    problems.push(`runtime ${JSON.stringify(runtime)} is not supported; use one of: ${RUNTIME_NAMES.join(', ')}`);
  }
  const runtimeInfo = typeof runtime === 'string' ? RUNTIMES[runtime] : undefined;

  const entry = input.entry ?? runtimeInfo?.defaultEntry ?? 'index.ts';
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

  for (const key of Object.keys(input)) {
    if (!KNOWN_KEYS.includes(key)) problems.push(`unknown field "${key}" (known: ${KNOWN_KEYS.join(', ')})`);
  }

  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    config: { name: input.name as string, runtime: runtime as string, entry: entry as string, env, memory, cpu, timeout },
  };
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
