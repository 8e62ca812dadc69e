import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { CallbackRefused, callbackHost, guardedLookup, literalRefusal } from '../lib/callback-policy';
import { CALL_BODY_LIMIT, callTag } from '../lib/calls';
import { repositoryPath } from '../lib/names';
import { BlobNotFoundError } from '../lib/registry-api';
import type { BlobRef, CallAttempt, CallInput, CallResult, CallState } from '../lib/types';
import type { ActivityDeps } from './deps';
import type { CallAttemptOutcome } from '../lib/events';
import { platformRecord } from '../lib/logs';
import { heartbeating } from './docker-helpers';

/** Answers an attempt is tried again on (besides no answer at all). */
const RETRYABLE = new Set([429, 502, 503, 504]);
/** Answer headers that belong to one connection or to the body's framing: not kept with a call's result. */
const NOT_KEPT = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date']);

/**
 * What an attempt's answer makes of the call: tried again (no answer, 429, 502, 503, 504, while
 * retries are left), or ended, succeeded below 500 (and not 429) and failed otherwise.
 */
export function attemptOutcome(status: number | undefined, retryable: boolean, attempt: number, retries: number): CallAttemptOutcome {
  if (retryable && attempt <= retries) return 'retry';
  return status !== undefined && status < 500 && status !== 429 ? 'succeeded' : 'failed';
}

export function createCallActivities({ registry, settings, events, logs }: ActivityDeps) {
  const host = settings.host === '0.0.0.0' || settings.host === '::' ? '127.0.0.1' : settings.host;
  const gateway = `${settings.tls ? 'https' : 'http'}://${host}:${settings.port}`;

  async function keep(input: CallInput, bytes: Uint8Array): Promise<BlobRef> {
    const repository = repositoryPath(input.name);
    const { digest } = await registry.uploadBlob(repository, bytes);
    const tag = callTag(input.callId, 'answer', input.acceptedAt);
    await registry.tagBlob(repository, tag, { digest, size: bytes.byteLength }, { 'dev.plat.call': input.callId });
    return { digest, size: bytes.byteLength };
  }

  /**
   * One attempt of an async call: the function invoked through this host's gateway, as a client
   * would (cold start, scaling and instance identity included), with the admin token and the
   * attempt's number. Its answer's body is kept in the registry. Never throws for the function's
   * answer: the workflow decides what to do with it.
   */
  async function attemptOnce(
    input: CallInput,
    attempt: number,
  ): Promise<{ attempt: CallAttempt; result?: CallResult; retryable: boolean }> {
    const startedAt = new Date();
    const record = (what: Pick<CallAttempt, 'status' | 'error'>): CallAttempt => ({
      attempt,
      startedAt: startedAt.toISOString(),
      durationMs: Date.now() - startedAt.getTime(),
      ...what,
    });
    let body: Uint8Array | string | undefined = input.inlineBody;
    if (input.body) {
      try {
        body = await registry.getBlob(repositoryPath(input.name), input.body.digest);
      } catch (error) {
        if (!(error instanceof BlobNotFoundError)) throw error;
        const gone = 'the request body is no longer kept (bodies expire after PLAT_CALL_RETENTION): the call cannot be sent again';
        return { attempt: record({ error: gone }), retryable: false };
      }
    }
    const headers = new Headers(input.headers);
    headers.set('authorization', `Bearer ${settings.authToken ?? ''}`);
    headers.set('x-plat-attempt', String(attempt));
    headers.set('x-plat-call-id', input.callId);
    let response: Response;
    try {
      response = await heartbeating(() =>
        fetch(`${gateway}/function/${input.name}${input.path}`, {
          method: input.method,
          headers,
          body: body as BodyInit | undefined,
          redirect: 'manual',
          signal: Context.current().cancellationSignal,
        }),
      );
    } catch (error) {
      return { attempt: record({ error: `no answer: ${(error as Error).message}` }), retryable: true };
    }
    const length = Number(response.headers.get('content-length') ?? 0);
    const answer = length > CALL_BODY_LIMIT ? undefined : new Uint8Array(await response.arrayBuffer());
    if (!answer || answer.byteLength > CALL_BODY_LIMIT) {
      await response.body?.cancel().catch(() => {});
      const error = `the answer is larger than ${CALL_BODY_LIMIT / 1024 / 1024} MiB, the most a call keeps`;
      return { attempt: record({ status: response.status, error }), retryable: false };
    }
    const kept = answer.byteLength > 0 ? await keep(input, answer) : undefined;
    const result: CallResult = {
      status: response.status,
      headers: [...response.headers].filter(([name]) => !NOT_KEPT.has(name)),
      ...(kept ? { body: kept } : {}),
    };
    const platformError = response.headers.get('x-plat-error');
    const error = response.status < 400 ? undefined : platformError ? `the platform answered ${platformError}` : `HTTP ${response.status}`;
    return {
      attempt: record({ status: response.status, ...(error ? { error } : {}) }),
      result,
      retryable: RETRYABLE.has(response.status),
    };
  }

  return {
    /**
     * An attempt (attemptOnce), told to the gateways on this host (they count it) and, when it
     * failed, written to the function's log as a platform event.
     */
    async invokeForCall({ input, attempt }: { input: CallInput; attempt: number }): Promise<{
      attempt: CallAttempt;
      result?: CallResult;
      retryable: boolean;
      outcome?: CallAttemptOutcome;
    }> {
      const outcome = await attemptOnce(input, attempt);
      const status = outcome.attempt.status;
      const ended = attemptOutcome(status, outcome.retryable, attempt, input.retry.retries);
      events.publish({ type: 'call-attempt', name: input.name, attempt, ...(status !== undefined ? { status } : {}), outcome: ended });
      if (ended !== 'succeeded') {
        const why = outcome.attempt.error ?? `HTTP ${status}`;
        const next = ended === 'retry' ? 'it is tried again' : `the call failed after ${attempt} attempt(s)`;
        logs?.append(input.name, platformRecord(`async call ${input.callId}: attempt ${attempt} failed (${why}); ${next}`));
      }
      return { ...outcome, outcome: ended };
    },

    /**
     * POSTs a call's result to its callback URL: the function's status, headers and body, with
     * X-Call-Id, X-Call-Status (succeeded or failed) and X-Function-Status. The platform's token is
     * never sent. A refusal (not 2xx) or no answer throws, and the delivery is tried again.
     */
    async deliverCallback({ url, state, name }: { url: string; state: CallState; name: string }): Promise<void> {
      const result = state.result;
      const body = result?.body ? await registry.getBlob(repositoryPath(name), result.body.digest) : undefined;
      const headers = new Headers(result?.headers.filter(([header]) => header !== 'content-encoding' && !header.startsWith('x-plat-')));
      headers.set('x-call-id', state.callId);
      headers.set('x-call-status', state.status);
      if (result) headers.set('x-function-status', String(result.status));
      let status: number;
      try {
        status = await postOnce(url, headers, body, settings.callbackAllowLocal);
      } catch (error) {
        if (!(error instanceof CallbackRefused)) throw error;
        throw ApplicationFailure.create({ type: 'CallbackRefused', message: error.message, nonRetryable: true });
      }
      if (status < 200 || status > 299) throw new Error(`the callback URL answered HTTP ${status}`);
    },
  };
}

/** How long a callback's receiver has to answer. */
const CALLBACK_TIMEOUT_MS = 30_000;

/**
 * POSTs once and answers the status (the answer's body is drained). Unless `allowLocal`, the
 * connection only goes to an address a callback may reach (lib/callback-policy.ts), checked at the
 * connection itself; no redirect is followed.
 */
function postOnce(url: string, headers: Headers, body: Uint8Array | undefined, allowLocal: boolean): Promise<number> {
  const target = new URL(url);
  const refusal = allowLocal ? undefined : literalRefusal(callbackHost(url));
  if (refusal) return Promise.reject(refusal);
  const head: Record<string, string> = Object.fromEntries(headers);
  head['content-length'] = String(body?.byteLength ?? 0);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = send(
      target,
      { method: 'POST', headers: head, timeout: CALLBACK_TIMEOUT_MS, ...(allowLocal ? {} : { lookup: guardedLookup }) },
      (answer) => {
        answer.resume();
        answer.on('end', () => resolve(answer.statusCode ?? 0));
        answer.on('error', reject);
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error(`the callback URL did not answer within ${CALLBACK_TIMEOUT_MS / 1000} s`)));
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}
