import { afterAll, describe, expect, it } from 'bun:test';
import { ApplicationFailure } from '@temporalio/common';
import { createCallActivities } from '../../activities/calls';
import type { ActivityDeps } from '../../activities/deps';
import { addressRefusal } from '../../lib/callback-policy';
import { callTag, callTagTime } from '../../lib/calls';
import { loadSettings } from '../../lib/settings';
import type { CallState } from '../../lib/types';

describe('the registry tags of async calls', () => {
  it('carry the time the call was accepted, to the second, and nothing else reads as one', () => {
    const tag = callTag('fn.0123456789abcdef0123456789abcdef-2026-12-03T10:00:00Z', 'answer', '2026-12-03T10:00:01.234Z');
    expect(tag).toBe('call-20261203100001-0123456789abcdef0123456789abcdef-2026-12-03T100000Z-answer');
    expect(tag).toMatch(/^[\w][\w.-]{0,127}$/);
    expect(callTagTime(tag)).toBe(Date.parse('2026-12-03T10:00:01Z'));
    expect(callTagTime('source-v20261203-100000-abcd')).toBeUndefined();
  });
});

describe('where callbacks may go', () => {
  const local = new Set(['192.0.2.2', 'fd00::2']);

  it('never to this host, link-local, unspecified or multicast addresses, however they are written', () => {
    for (const address of [
      '127.0.0.1',
      '127.8.9.10',
      '::1',
      '[::1]',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '0:0:0:0:0:ffff:7f00:1',
      '[::ffff:a9fe:a9fe]',
      '0.0.0.0',
      '::',
      '169.254.169.254',
      'fe80::1',
      '224.0.0.1',
      'ff02::1',
      '192.0.2.2',
      'FD00::2',
    ]) {
      expect([address, addressRefusal(address, local)]).toEqual([address, expect.any(String)]);
    }
  });

  it('to other machines, public or private', () => {
    for (const address of ['8.8.8.8', '10.1.2.3', '172.17.0.5', '192.168.1.1', '192.0.2.3', '2001:db8::1', 'fd00::3', '::ffff:808:808']) {
      expect([address, addressRefusal(address, local)]).toEqual([address, undefined]);
    }
  });
});

describe('a callback delivery', () => {
  let received = 0;
  const receiver = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch() {
      received++;
      return new Response('ok');
    },
  });
  afterAll(() => receiver.stop(true));
  const state: CallState = {
    callId: 'fn.0',
    name: 'fn',
    status: 'succeeded',
    trigger: 'api',
    acceptedAt: new Date().toISOString(),
    attempts: [],
  };
  const deliver = (allowLocal: boolean, url: string) => {
    const settings = { ...loadSettings({}), callbackAllowLocal: allowLocal };
    const { deliverCallback } = createCallActivities({ settings, events: { publish: () => {} } } as unknown as ActivityDeps);
    return deliverCallback({ url, state, name: 'fn' });
  };

  it('refuses this host at the connection, by address or by a name that resolves to it, for good', async () => {
    const before = received;
    for (const url of [`http://127.0.0.1:${receiver.port}/done`, `http://localhost:${receiver.port}/done`]) {
      const failure = await deliver(false, url).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(ApplicationFailure);
      expect((failure as ApplicationFailure).type).toBe('CallbackRefused');
      expect((failure as ApplicationFailure).nonRetryable).toBe(true);
      expect((failure as ApplicationFailure).message).toContain('PLAT_CALLBACK_ALLOW_LOCAL');
    }
    expect(received).toBe(before);
  });

  it('reaches this host when PLAT_CALLBACK_ALLOW_LOCAL allows it', async () => {
    const before = received;
    await deliver(true, `http://localhost:${receiver.port}/done`);
    expect(received).toBe(before + 1);
  });
});
