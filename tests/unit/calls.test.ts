import { describe, expect, it } from 'bun:test';
import { callTag, callTagTime } from '../../lib/calls';

describe('the registry tags of async calls', () => {
  it('carry the time the call was accepted, to the second, and nothing else reads as one', () => {
    const tag = callTag('fn.0123456789abcdef0123456789abcdef-2026-12-03T10:00:00Z', 'answer', '2026-12-03T10:00:01.234Z');
    expect(tag).toBe('call-20261203100001-0123456789abcdef0123456789abcdef-2026-12-03T100000Z-answer');
    expect(tag).toMatch(/^[\w][\w.-]{0,127}$/);
    expect(callTagTime(tag)).toBe(Date.parse('2026-12-03T10:00:01Z'));
    expect(callTagTime('source-v20261203-100000-abcd')).toBeUndefined();
  });
});
