import { describe, expect, it, test } from 'bun:test';
import { CONFIG_DEFAULTS, describeProblems, parseFunctionConfig, SCALE_DEFAULTS, validateFunctionConfig } from '../../lib/function-config';

describe('validateFunctionConfig', () => {
  it('fills in defaults for a minimal function.json', () => {
    expect(validateFunctionConfig({ name: 'hello' })).toEqual({
      ok: true,
      config: { name: 'hello', runtime: 'bun', entry: 'index.ts', env: {}, ...CONFIG_DEFAULTS, scale: SCALE_DEFAULTS, access: 'key' },
    });
  });

  it('keeps every valid field', () => {
    const raw = {
      name: 'api-v2',
      runtime: 'bun',
      entry: 'src/main.ts',
      env: { LOG_LEVEL: 'debug' },
      memory: 512,
      cpu: 0.5,
      timeout: 60,
      scale: { min: 1, pauseAfter: 0, stopAfter: 3600, concurrency: 8, max: 3, queue: 0 },
      access: 'public' as const,
    };
    expect(validateFunctionConfig(raw)).toEqual({ ok: true, config: raw });
  });

  it('lists every problem at once', () => {
    const result = validateFunctionConfig({
      name: '-bad',
      runtime: 'cobol',
      entry: '../etc/passwd',
      env: { PORT: '1', 'A-B': 'x', OK: 3 },
      memory: 1,
      cpu: 'two',
      timeout: 0,
      extra: true,
    });
    expect(result.ok).toBe(false);
    const problems = result.ok ? [] : result.problems;
    expect(problems).toHaveLength(10);
    expect(problems.join('\n')).toContain('runtime "cobol" is not supported; use one of: bun');
    expect(problems.join('\n')).toContain('env name "PORT" is reserved');
    expect(problems.join('\n')).toContain('unknown field "extra"');
  });

  test.each([
    ['a', true],
    ['hello-world', true],
    ['h2', true],
    ['Hello', false],
    ['1abc', false],
    ['ends-', false],
    ['has_underscore', false],
    ['x'.repeat(49), false],
  ])('name %p valid: %p', (name, valid) => {
    expect(validateFunctionConfig({ name }).ok).toBe(valid);
  });

  it('reports JSON syntax errors as one problem', () => {
    const result = parseFunctionConfig('{ "name": ');
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : describeProblems(result.problems)).toStartWith('function.json: function.json is not valid JSON');
  });

  it('refuses a non-object', () => {
    expect(validateFunctionConfig([1, 2])).toEqual({ ok: false, problems: ['function.json must hold a JSON object'] });
  });

  it('bounds env as a whole, so every start can pass it to the process', () => {
    const result = validateFunctionConfig({ name: 'big', env: { A: 'x'.repeat(20_000), B: 'y'.repeat(20_000) } });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.problems).toEqual(['env is 39.1 KiB; names and values together may take 32 KiB']);
    expect(validateFunctionConfig({ name: 'fits', env: { A: 'x'.repeat(30_000) } }).ok).toBe(true);
  });

  it('takes async rules, fills in those left out, and refuses bad ones with what it wants', () => {
    const ok = validateFunctionConfig({ name: 'a', async: { retries: 2, backoff: '100ms' } });
    expect(ok.ok && ok.config.async).toEqual({ retries: 2, backoff: '100ms', maxBackoff: '1m' });
    const none = validateFunctionConfig({ name: 'a' });
    expect(none.ok && none.config.async).toBeUndefined();
    const bad = validateFunctionConfig({ name: 'a', async: { retries: -1, backoff: 'soon', maxBackoff: '5ms', extra: 1 } });
    expect(bad.ok).toBe(false);
    const problems = bad.ok ? [] : bad.problems;
    expect(problems).toContain('unknown field "async.extra" (known: retries, backoff, maxBackoff)');
    expect(problems.some((p) => p.startsWith('async.retries must be a whole number from 0 to 20'))).toBe(true);
    expect(problems.some((p) => p.startsWith('async.backoff must be a duration'))).toBe(true);
    expect(problems.some((p) => p.startsWith('async.maxBackoff must be a duration'))).toBe(true);
    const shorter = validateFunctionConfig({ name: 'a', async: { backoff: '10s', maxBackoff: '1s' } });
    expect(shorter.ok ? [] : shorter.problems).toEqual(['async.maxBackoff (1s) must not be shorter than async.backoff (10s)']);
  });

  it('takes schedules of a cron or an interval, with defaults, and says what is wrong with a bad one', () => {
    const ok = validateFunctionConfig({
      name: 'a',
      schedules: [
        { cron: '*/5 * * * *', path: '/tick' },
        { every: '30s', timezone: 'Europe/Paris', method: 'GET', overlap: 'allow' },
      ],
    });
    expect(ok.ok && ok.config.schedules).toEqual([
      { cron: '*/5 * * * *', path: '/tick', method: 'POST', overlap: 'skip' },
      { every: '30s', timezone: 'Europe/Paris', path: '/', method: 'GET', overlap: 'allow' },
    ]);
    const bad = validateFunctionConfig({
      name: 'a',
      schedules: [
        { cron: 'every day', every: '1s' },
        { every: '10ms', timezone: 'Mars/Olympus', path: 'tick', method: 'TRACE', overlap: 'never' },
        3,
      ],
    });
    const problems = bad.ok ? [] : bad.problems;
    expect(problems).toEqual([
      'schedules[0] needs either "cron" or "every"',
      'schedules[0].cron must be a cron expression of five fields, such as "*/5 * * * *" (got "every day")',
      'schedules[1].every must be a duration of at least 1s, such as "30s" or "1h" (got "10ms")',
      'schedules[1].timezone must be an IANA time zone such as "Europe/Paris" (got "Mars/Olympus")',
      'schedules[1].path must be a path starting with "/" (got "tick")',
      'schedules[1].method must be one of GET, POST, PUT, PATCH, DELETE (got "TRACE")',
      'schedules[1].overlap must be one of skip, bufferOne, allow (got "never")',
      'schedules[2] must be an object such as { "every": "30s", "path": "/tick" }',
    ]);
  });

  it('fills in the scale rules a scale object leaves out', () => {
    const result = validateFunctionConfig({ name: 'idle', scale: { pauseAfter: 10 } });
    expect(result.ok && result.config.scale).toEqual({ min: 0, pauseAfter: 10, stopAfter: 600, concurrency: 100, max: 10, queue: 100 });
  });

  it.each([
    [{ concurrency: 0 }, 'scale.concurrency must be a whole number from 1'],
    [{ max: 101 }, 'scale.max must be a whole number from 1 to 100'],
    [{ queue: -1 }, 'scale.queue must be a whole number from 0'],
    [{ min: 3, max: 2 }, 'scale.min (3) must not be more than scale.max (2)'],
  ])('refuses scale %p', (scale, message) => {
    const result = validateFunctionConfig({ name: 'scaled', scale });
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : describeProblems(result.problems)).toContain(message);
  });

  test.each([
    [{ min: -1 }, 'scale.min must be a whole number from 0 to 10 (got -1)'],
    [{ pauseAfter: 2 }, 'scale.pauseAfter must be 0 (never) or whole seconds from 5 to 604800 (got 2)'],
    [{ stopAfter: 1.5 }, 'scale.stopAfter must be 0 (never) or whole seconds from 5 to 604800 (got 1.5)'],
    [{ pauseAfter: 60, stopAfter: 30 }, 'scale.stopAfter (30) must not be shorter than scale.pauseAfter (60)'],
    [{ idleAfter: 5 }, 'unknown field "scale.idleAfter" (known: min, pauseAfter, stopAfter, concurrency, max, queue)'],
    ['fast', 'scale must be an object such as { "min": 0, "max": 10, "concurrency": 100, "pauseAfter": 30, "stopAfter": 600 }'],
  ])('refuses scale %p', (scale, problem) => {
    const result = validateFunctionConfig({ name: 'idle', scale });
    expect(!result.ok && result.problems).toEqual([problem]);
  });
});
