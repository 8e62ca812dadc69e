import { describe, expect, it } from 'bun:test';
import { Client, Connection } from '@temporalio/client';
import { RegistryApi } from '../../activities/registry-api';
import { createTokenCheck } from '../../gateway/auth';
import { createApp } from '../../gateway/app';
import { downstreamResponseHeaders, upstreamRequestHeaders } from '../../gateway/invoke/headers';
import { PlatError } from '../../lib/errors';
import { loadSettings } from '../../lib/settings';

describe('token check', () => {
  const check = createTokenCheck('s3cret');
  const withHeader = (value?: string) => ({ request: new Request('http://x/', { headers: value ? { authorization: value } : {} }) });
  it('accepts the token', () => {
    expect(() => check(withHeader('Bearer s3cret'))).not.toThrow();
  });
  it.each([undefined, 'Bearer', 'Bearer s3cre', 'Bearer s3cret2', 'Basic s3cret', 's3cret'])('refuses %p', (header) => {
    expect(() => check(withHeader(header))).toThrow(PlatError);
  });
});

describe('proxy headers', () => {
  it('drops hop-by-hop headers and the platform token, adds forwarding headers', () => {
    const incoming = new Headers({
      authorization: 'Bearer t',
      connection: 'keep-alive',
      'x-custom': '1',
      host: 'gw:8080',
      'accept-encoding': 'gzip',
    });
    const out = upstreamRequestHeaders(incoming, new URL('http://gw:8080/function/f'), '10.1.2.3');
    expect(out.has('authorization')).toBe(false);
    expect(out.has('connection')).toBe(false);
    expect(out.get('x-custom')).toBe('1');
    expect(out.get('x-forwarded-for')).toBe('10.1.2.3');
    expect(out.get('x-forwarded-host')).toBe('gw:8080');
    expect(out.get('accept-encoding')).toBe('identity');
  });
  it('drops the encoding of a body that fetch already decompressed', () => {
    const out = downstreamResponseHeaders(
      new Headers({ 'content-encoding': 'gzip', 'content-length': '10', 'x-a': 'b', 'transfer-encoding': 'chunked' }),
    );
    expect([...out.keys()]).toEqual(['x-a']);
  });
});

describe('createApp without a live stack', () => {
  // A lazy connection is never dialled: these requests end before the gateway needs Temporal.
  const temporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
  const { app } = createApp({ temporal, registry: new RegistryApi('127.0.0.1:1'), settings: { ...loadSettings({}), authToken: 'tok' } });

  it('answers /healthz without a token', async () => {
    const response = await app.handle(new Request('http://localhost/healthz'));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('answers unknown routes with a JSON 404', async () => {
    const response = await app.handle(new Request('http://localhost/nope'));
    expect(response.status).toBe(404);
    expect((await response.json()).error.code).toBe('NOT_FOUND');
  });

  it('refuses a deploy that is not multipart, naming the fields', async () => {
    const response = await app.handle(
      new Request('http://localhost/functions', { method: 'POST', body: '{}', headers: { authorization: 'Bearer tok' } }),
    );
    expect(response.status).toBe(400);
    expect((await response.json()).error.message).toContain('"function"');
  });
});
