import { afterEach, describe, expect, it } from 'bun:test';
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLogQuery } from '../../gateway/logs';
import { PlatError } from '../../lib/errors';
import { type LogRecord, LogWriter, logsDir, REQUEST_MARK, readLogs, takeRequestId } from '../../lib/logs';
import { parseDuration } from '../../lib/settings';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function home(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'plat-logs-unit-'));
  dirs.push(dir);
  return dir;
}

function record(text: string, extra: Partial<LogRecord> = {}): LogRecord {
  return { time: new Date().toISOString(), instance: 'abcdefabcdef', version: 'v20261202-120000-abcd', stream: 'stdout', text, ...extra };
}

async function collect(generator: AsyncGenerator<LogRecord>): Promise<string[]> {
  const texts: string[] = [];
  for await (const r of generator) texts.push(r.text);
  return texts;
}

const retention = { maxBytes: 50 * 1024 * 1024, maxAgeMs: 24 * 3_600_000 };

describe('request marks', () => {
  it('takes a well-formed id off a marked line, and leaves any other line as it is', () => {
    expect(takeRequestId(`${REQUEST_MARK}req-1\u001fhello`)).toEqual({ text: 'hello', requestId: 'req-1' });
    expect(takeRequestId('plain')).toEqual({ text: 'plain' });
    expect(takeRequestId(`${REQUEST_MARK}bad id\u001fhello`).requestId).toBeUndefined();
    expect(takeRequestId(`${REQUEST_MARK}unterminated`).requestId).toBeUndefined();
  });
});

describe('the log store', () => {
  it('reads back what was written, filtered by request, version and tail', async () => {
    const dir = await home();
    const writer = new LogWriter(dir, retention);
    writer.append(
      'fn',
      record('one', { requestId: 'a' }),
      record('two', { requestId: 'b' }),
      record('three', { version: 'v20261202-130000-beef' }),
    );
    await writer.flush();
    const signal = new AbortController().signal;
    expect(await collect(readLogs(dir, 'fn', {}, retention, signal))).toEqual(['one', 'two', 'three']);
    expect(await collect(readLogs(dir, 'fn', { requestId: 'b' }, retention, signal))).toEqual(['two']);
    expect(await collect(readLogs(dir, 'fn', { version: 'v20261202-130000-beef' }, retention, signal))).toEqual(['three']);
    expect(await collect(readLogs(dir, 'fn', { tail: 2 }, retention, signal))).toEqual(['two', 'three']);
    expect(await collect(readLogs(dir, 'fn', { since: Date.now() + 60_000 }, retention, signal))).toEqual([]);
    expect(await collect(readLogs(dir, 'other', {}, retention, signal))).toEqual([]);
  });

  it('rotates past a fifth of the bound and drops the oldest segments past it', async () => {
    const dir = await home();
    const small = { maxBytes: 50_000, maxAgeMs: retention.maxAgeMs };
    const writer = new LogWriter(dir, small);
    for (let i = 0; i < 100; i++) {
      writer.append('fn', record(`line ${i} ${'x'.repeat(1000)}`));
      await writer.flush();
    }
    const files = await readdir(logsDir(dir, 'fn'));
    expect(files.length).toBeGreaterThan(1);
    const texts = await collect(readLogs(dir, 'fn', {}, small, new AbortController().signal));
    // Bounded: the oldest lines are gone, the newest are there, in order.
    expect(texts.length).toBeLessThan(60);
    expect(texts.at(-1)).toStartWith('line 99 ');
    const numbers = texts.map((t) => Number(t.split(' ')[1]));
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
  });

  it('deletes segments older than the retention', async () => {
    const dir = await home();
    const writer = new LogWriter(dir, { maxBytes: 10_000, maxAgeMs: 60_000 });
    for (let i = 0; i < 10; i++) {
      writer.append('fn', record(`line ${i} ${'x'.repeat(1000)}`));
      await writer.flush();
    }
    const before = (await readdir(logsDir(dir, 'fn'))).filter((f) => f !== 'current.ndjson');
    expect(before.length).toBeGreaterThan(0);
    // A segment's name is when it was closed: rename them an hour into the past.
    for (const file of before) {
      const old = join(logsDir(dir, 'fn'), `${Number(file.split('.')[0]) - 3_600_000}.ndjson`);
      await Bun.write(old, Bun.file(join(logsDir(dir, 'fn'), file)));
      await rm(join(logsDir(dir, 'fn'), file));
      await utimes(old, new Date(), new Date());
    }
    await writer.pruneAll();
    expect((await readdir(logsDir(dir, 'fn'))).filter((f) => f !== 'current.ndjson')).toEqual([]);
  });

  it('follows new lines across a rotation', async () => {
    const dir = await home();
    const small = { maxBytes: 20_000, maxAgeMs: retention.maxAgeMs };
    const writer = new LogWriter(dir, small, 1);
    writer.append('fn', record('before'));
    await writer.flush();
    const abort = new AbortController();
    const seen: string[] = [];
    const reader = readLogs(dir, 'fn', { follow: true, tail: 1 }, small, abort.signal);
    // The last line there is, once the reader has looked: what comes after is followed.
    expect((await reader.next()).value?.text).toBe('before');
    const following = (async () => {
      for await (const r of reader) {
        seen.push(r.text);
        if (seen.length === 12) abort.abort();
      }
    })();
    const deadline = setTimeout(() => abort.abort(), 3000);
    for (let i = 0; i < 12; i++) {
      writer.append('fn', record(`after ${i} ${'y'.repeat(1000)}`));
      await writer.flush();
    }
    await following;
    clearTimeout(deadline);
    expect(seen.map((t) => t.split(' ').slice(0, 2).join(' '))).toEqual(Array.from({ length: 12 }, (_, i) => `after ${i}`));
  });
});

describe('the logs query', () => {
  it('has defaults, and reads durations and ISO times', () => {
    expect(parseLogQuery({})).toEqual({ follow: false, tail: 100 });
    expect(parseLogQuery({ follow: 'true' })).toEqual({ follow: true, tail: 10 });
    expect(parseLogQuery({ since: '10m' }, 1_000_000_000).since).toBe(1_000_000_000 - 600_000);
    expect(parseLogQuery({ since: '2026-12-01T10:00:00Z' }).since).toBe(Date.parse('2026-12-01T10:00:00Z'));
    expect(parseLogQuery({ tail: '0', request: 'abc-1', version: 'v20261202-120000-abcd' })).toMatchObject({
      tail: 0,
      requestId: 'abc-1',
      version: 'v20261202-120000-abcd',
    });
  });

  it('refuses what it cannot read, saying what it wants', () => {
    for (const query of [{ tail: '-1' }, { tail: 'all' }, { since: 'yesterday' }, { version: 'latest' }, { request: 'a b' }]) {
      expect(() => parseLogQuery(query)).toThrow(PlatError);
    }
    expect(() => parseLogQuery({ since: 'soon' })).toThrow(/duration such as 10m/);
  });

  it('reads durations', () => {
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1w')).toBeUndefined();
  });
});
