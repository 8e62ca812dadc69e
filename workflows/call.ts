import { ApplicationFailure, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { CallInput, CallState } from '../lib/types';
import { callAttempt, callbackDelivery } from './activity-options';
import { callQuery } from './definitions';

const { invokeForCall } = proxyActivities<Activities>(callAttempt);
const { deliverCallback } = proxyActivities<Activities>(callbackDelivery);

/**
 * call/<fn>/<call id>: one async call (POST /async-function/<fn>). Each attempt invokes the function
 * through the gateway, as a synchronous call would go (cold start, scaling, instance identity), with
 * `x-plat-attempt`; an attempt that found no answer, or an answer of 429, 502, 503 or 504, is tried
 * again after a backoff that doubles, up to the function's `async` rules. Bodies stay in the
 * registry: the history holds their digests only. The call fails (a failed workflow, listed by
 * `plat calls --failed`) when its last answer is one of those, or 500 and above. The result goes to
 * the callback URL when there is one.
 */
export async function callFunction(accepted: CallInput): Promise<CallState> {
  // A schedule's run is named by the schedule (its id plus the run's time): that is its call id.
  const { workflowId } = workflowInfo();
  const input =
    accepted.trigger === 'schedule'
      ? { ...accepted, callId: workflowId.slice(workflowId.lastIndexOf('/') + 1), acceptedAt: new Date().toISOString() }
      : accepted;
  const state: CallState = {
    callId: input.callId,
    name: input.name,
    status: 'queued',
    trigger: input.trigger,
    acceptedAt: input.acceptedAt,
    attempts: [],
    ...(input.callbackUrl ? { callback: 'pending' as const } : {}),
  };
  setHandler(callQuery, () => state);
  const { retries, backoffMs, maxBackoffMs } = input.retry;
  let ended: 'succeeded' | 'failed' = 'failed';
  for (let attempt = 1; ; attempt++) {
    state.status = 'running';
    const outcome = await invokeForCall({ input, attempt }).catch(
      (error: unknown): Awaited<ReturnType<Activities['invokeForCall']>> => ({
        // The attempt itself failed (its worker died, say): it counts as one with no answer.
        attempt: { attempt, startedAt: new Date().toISOString(), durationMs: 0, error: (error as Error).message },
        retryable: true,
      }),
    );
    state.attempts.push(outcome.attempt);
    if (outcome.result) state.result = outcome.result;
    const next = outcome.outcome ?? (attempt <= retries ? 'retry' : 'failed');
    if (next !== 'retry') {
      ended = next;
      break;
    }
    await sleep(Math.min(backoffMs * 2 ** (attempt - 1), maxBackoffMs));
  }
  state.status = ended;
  state.endedAt = new Date().toISOString();
  if (input.callbackUrl) {
    state.callback = await deliverCallback({ url: input.callbackUrl, state, name: input.name }).then(
      () => 'delivered' as const,
      () => 'failed' as const,
    );
  }
  if (state.status === 'failed') {
    const last = state.attempts.at(-1);
    throw ApplicationFailure.create({
      type: 'CallFailed',
      message: `the call failed after ${state.attempts.length} attempt(s): ${last?.error ?? `HTTP ${last?.status}`}`,
      nonRetryable: true,
      details: [state],
    });
  }
  return state;
}
