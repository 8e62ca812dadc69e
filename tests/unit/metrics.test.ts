import { describe, expect, it } from 'bun:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { GatewayMetrics, type InvocationRecord, LATENCY_BUCKETS, writeRecord } from '../../gateway/metrics';

const FAMILIES = /^(# (HELP|TYPE) )?plat_function_(invocations_total|duration_seconds)/;

/** The lines of the two families counted per invocation, as a registry renders them. */
const familyLines = (text: string) => text.split('\n').filter((line) => FAMILIES.test(line));

describe('invocation metrics', () => {
  it("renders what prom-client's own Counter and Histogram render for the same invocations, and writes one record line each", async () => {
    const invocations: Array<[string, number, number]> = [
      ['a', 200, 0.4],
      ['a', 200, 1],
      ['a', 200, 2.6],
      ['a', 404, 2.5],
      ['b', 200, 40],
      ['a', 499, 2_000],
      ['b', 504, 100_000],
      ['b', 200, 0],
    ];
    const reference = new Registry();
    const count = new Counter({
      name: 'plat_function_invocations_total',
      help: 'x',
      labelNames: ['function', 'code'],
      registers: [reference],
    });
    const seconds = new Histogram({
      name: 'plat_function_duration_seconds',
      help: 'x',
      labelNames: ['function'],
      buckets: LATENCY_BUCKETS,
      registers: [reference],
    });
    const written: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((text: string) => written.push(text) > 0) as typeof process.stdout.write;
    try {
      const metrics = new GatewayMetrics(async () => []);
      for (const [name, status, ms] of invocations) {
        const record: InvocationRecord = { time: 't', function: name, method: 'GET', path: '/p', status, durationMs: ms, requestId: 'r' };
        metrics.invocation(record);
        count.inc({ function: name, code: String(status) });
        seconds.observe({ function: name }, ms / 1000);
      }
      // The same series (in any order: a scrape's series are a set), help texts aside.
      const withoutHelp = (lines: string[]) => lines.filter((line) => !line.startsWith('# HELP')).sort();
      const ours = familyLines(await metrics.registry.metrics());
      expect(withoutHelp(ours)).toEqual(withoutHelp(familyLines(await reference.metrics())));
      expect(ours).toContain('plat_function_duration_seconds_bucket{le="0.001",function="a"} 2');
      expect(ours).toContain('plat_function_invocations_total{function="b",code="504"} 1');
      metrics.flushRecords();
    } finally {
      process.stdout.write = write;
    }
    const lines = written.join('').trimEnd().split('\n');
    expect(lines).toHaveLength(invocations.length);
    expect(JSON.parse(lines[4] as string)).toMatchObject({ function: 'b', status: 200, durationMs: 40 });
  });
});

describe('invocation records', () => {
  it.each(['/', '/a/b?', '/say "hi"\\now', '/ünïcödé/€/😀', '/tab\there\u0001'])(
    'writes a JSON line that reads back as the record (path %p)',
    (path) => {
      const record: InvocationRecord = {
        time: '2026-12-03T17:00:00.000Z',
        function: 'fn',
        version: 'v1',
        instance: 'abcdef012345',
        method: 'POST',
        path,
        status: 201,
        durationMs: 12.345,
        start: 'cold',
        bytesIn: 10,
        bytesOut: 0,
        requestId: 'id-1',
      };
      const bytes = Buffer.alloc(4096, 0xff);
      const end = writeRecord(bytes, 7, record);
      const line = bytes.toString('utf8', 7, end);
      expect(line.endsWith('}\n')).toBe(true);
      expect(JSON.parse(line)).toEqual(record);
      expect(bytes[end]).toBe(0xff);
      const { version, instance, start, bytesIn, bytesOut, ...required } = record;
      expect(JSON.parse(bytes.toString('utf8', 0, writeRecord(bytes, 0, required)))).toEqual(required);
    },
  );
});
