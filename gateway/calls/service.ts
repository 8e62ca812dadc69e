import { CallbackRefused, checkCallbackUrl } from '../../lib/callback-policy';
import { createHash, randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { PlatError } from '../../lib/errors';
import { asyncOf } from '../../lib/function-config';
import { CALL_ID_PATTERN, functionNameProblem, functionOfCall, isScheduledCall, repositoryPath, workflowIds } from '../../lib/names';
import { describeSchedules, type ScheduleSummary } from '../../lib/schedules';
import type { RegistryApi } from '../../lib/registry-api';
import { parseDuration, publicScheme, type Settings } from '../../lib/settings';
import type { CallInput, CallState } from '../../lib/types';
import { CALL_BODY_LIMIT, callTag } from '../../lib/calls';
import { callQuery, WORKFLOW_TYPES } from '../../workflows/definitions';
import type { FunctionsService } from '../functions/service';
import { readRequestHeaders } from '../invoke/headers';
import { functionPath } from '../invoke/service';
import { checkSizesOf } from '../limits';
import { CONTROL_READ_MS, within } from '../temporal';
import { toPlatError } from '../temporal-errors';

/** A call in a list: its id, how it stands, and when it ran. */
export interface CallSummary {
  callId: string;
  trigger: 'api' | 'schedule';
  status: CallState['status'];
  startedAt: string;
  endedAt?: string;
}

const SUMMARY_STATUS: Record<string, CallState['status']> = { RUNNING: 'running', COMPLETED: 'succeeded' };

/** Headers of the async call itself, for the platform: not sent to the function. */
const CALL_HEADERS = new Set(['x-callback-url']);
const MAX_IDEMPOTENCY_KEY = 256;

/**
 * Async calls: `POST /async-function/NAME[/path]` (any method) is accepted at once (202 and a call
 * id) and runs as the workflow call/NAME/ID (workflows/call.ts). The request's body is kept in the
 * function's registry repository, never in the history. `GET /calls/:id` reads the call's state.
 */
export class CallsService {
  /** Who may call what: the invoke path's check (the admin token, a key of the function, a JWT, or a public function). */
  authorize?: (name: string, token: string | undefined) => Promise<void> | undefined;

  constructor(
    private readonly temporal: Client,
    private readonly registry: RegistryApi,
    private readonly functions: FunctionsService,
    private readonly settings: Settings,
  ) {}

  async accept(name: string, request: Request, clientIp: string | undefined): Promise<Response> {
    const heads = readRequestHeaders(request.headers, clientIp, publicScheme(this.settings));
    checkSizesOf(heads.contentLength, heads.bytes);
    const problem = functionNameProblem(name);
    if (problem) throw new PlatError('BAD_REQUEST', problem);
    const authorizing = this.authorize?.(name, heads.token);
    if (authorizing !== undefined) await authorizing;
    const callbackUrl = request.headers.get('x-callback-url') ?? undefined;
    if (callbackUrl !== undefined && !isHttpUrl(callbackUrl)) {
      throw new PlatError('BAD_REQUEST', `X-Callback-Url must be an http or https URL, not "${callbackUrl.slice(0, 100)}"`);
    }
    const key = request.headers.get('idempotency-key') ?? undefined;
    if (key !== undefined && (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY)) {
      throw new PlatError('BAD_REQUEST', `Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY} characters`);
    }
    // The same key always names the same call: a second call finds it.
    const callId = `${name}.${key ? createHash('sha256').update(`${name}\u0000${key}`).digest('hex').slice(0, 32) : randomBytes(16).toString('hex')}`;
    const workflowId = workflowIds.call(callId);
    if (key && (await this.exists(workflowId))) return acceptedAnswer(callId);

    const state = await this.functions.get(name);
    const active = state.versions.find((v) => v.version === state.activeVersion);
    if (!active) throw new PlatError('NO_ACTIVE_VERSION', `function ${name} has no deployed version yet`);
    // After the function is known: a name that does not exist costs no DNS look-up.
    if (callbackUrl !== undefined && !this.settings.callbackAllowLocal) await allowedCallback(callbackUrl);
    const rules = asyncOf(active.config);
    const bytes = request.body ? new Uint8Array(await request.arrayBuffer()) : new Uint8Array();
    if (bytes.byteLength > CALL_BODY_LIMIT) {
      throw new PlatError('PAYLOAD_TOO_LARGE', `an async call's body may take ${CALL_BODY_LIMIT / 1024 / 1024} MiB at most`);
    }
    const acceptedAt = new Date().toISOString();
    let body: CallInput['body'];
    if (bytes.byteLength > 0) {
      // A blob uploaded while the registry's garbage is collected could be taken for garbage.
      await this.functions.registryGate.open();
      const repository = repositoryPath(name);
      const { digest } = await this.registry.uploadBlob(repository, bytes);
      const tag = callTag(callId, 'request', acceptedAt);
      await this.registry.tagBlob(repository, tag, { digest, size: bytes.byteLength }, { 'dev.plat.call': callId });
      body = { digest, size: bytes.byteLength };
    }
    const headers = heads.lines
      .split('\r\n')
      .filter(Boolean)
      .map((line): [string, string] => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)])
      .filter(([header]) => !CALL_HEADERS.has(header));
    const input: CallInput = {
      callId,
      name,
      method: request.method,
      path: asyncFunctionPath(request.url),
      headers,
      ...(body ? { body } : {}),
      ...(callbackUrl ? { callbackUrl } : {}),
      trigger: 'api',
      retry: {
        retries: rules.retries,
        backoffMs: parseDuration(rules.backoff) ?? 1000,
        maxBackoffMs: parseDuration(rules.maxBackoff) ?? 60_000,
      },
      acceptedAt,
    };
    try {
      await within(this.temporal, CONTROL_READ_MS, () =>
        this.temporal.workflow.start(WORKFLOW_TYPES.call, {
          workflowId,
          taskQueue: this.settings.taskQueue,
          args: [input],
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: key ? 'REJECT_DUPLICATE' : 'ALLOW_DUPLICATE',
        }),
      );
    } catch (error) {
      // The same key, for a call that has ended meanwhile: it is the answer.
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw toPlatError(error, 'INTERNAL');
    }
    return acceptedAnswer(callId);
  }

  /** A call's state; 404 for a call that does not exist (or whose history the namespace no longer keeps). */
  async get(callId: string, token: string | undefined): Promise<CallState> {
    if (!CALL_ID_PATTERN.test(callId)) throw new PlatError('BAD_REQUEST', `"${callId}" is not a call id`);
    const authorizing = this.authorize?.(functionOfCall(callId), token);
    if (authorizing !== undefined) await authorizing;
    try {
      return await within(this.temporal, CONTROL_READ_MS, () =>
        this.temporal.workflow.getHandle(workflowIds.call(callId)).query(callQuery),
      );
    } catch (error) {
      if (error instanceof WorkflowNotFoundError)
        throw new PlatError('NOT_FOUND', `no call ${callId}; see plat calls ${functionOfCall(callId)}`);
      throw toPlatError(error, 'INTERNAL');
    }
  }

  /**
   * The function's recent calls, newest first, each by its latest run (a retried call is what its
   * retry made of it); `failed`: only those whose latest run failed.
   */
  async list(name: string, { failed = false, limit = 50 }: { failed?: boolean; limit?: number } = {}): Promise<CallSummary[]> {
    await this.functions.get(name); // 404 for no such function
    const query = `WorkflowType = '${WORKFLOW_TYPES.call}' AND WorkflowId STARTS_WITH 'call/${name}/'`;
    const latest = new Map<string, CallSummary>();
    try {
      await within(this.temporal, CONTROL_READ_MS, async () => {
        // Newest runs first: the first run seen of a call is its latest. Bounded, as a page of a list is.
        let seen = 0;
        for await (const wf of this.temporal.workflow.list({ query, pageSize: 200 })) {
          if (++seen > 5000 || latest.size >= limit * (failed ? 20 : 1)) break;
          const callId = wf.workflowId.slice(wf.workflowId.lastIndexOf('/') + 1);
          if (latest.has(callId)) continue;
          latest.set(callId, {
            callId,
            trigger: isScheduledCall(callId) ? 'schedule' : 'api',
            status: SUMMARY_STATUS[wf.status.name] ?? 'failed',
            startedAt: wf.startTime.toISOString(),
            ...(wf.closeTime ? { endedAt: wf.closeTime.toISOString() } : {}),
          });
        }
      });
    } catch (error) {
      throw toPlatError(error, 'INTERNAL');
    }
    return [...latest.values()].filter((call) => !failed || call.status === 'failed').slice(0, limit);
  }

  /** The function's schedules (its active version's), with their next and recent runs. */
  async schedules(name: string): Promise<ScheduleSummary[]> {
    const state = await this.functions.get(name);
    const active = state.versions.find((v) => v.version === state.activeVersion);
    if (!active) return [];
    try {
      return await within(this.temporal, CONTROL_READ_MS, () => describeSchedules(this.temporal, active));
    } catch (error) {
      throw toPlatError(error, 'INTERNAL');
    }
  }

  /**
   * Runs a failed call again, from its first attempt, with the request it was accepted with (a
   * dead-letter redrive): the same call id, a new run of its workflow. Only a failed call can.
   */
  async retry(callId: string): Promise<void> {
    if (!CALL_ID_PATTERN.test(callId)) throw new PlatError('BAD_REQUEST', `"${callId}" is not a call id`);
    const handle = this.temporal.workflow.getHandle(workflowIds.call(callId));
    try {
      const { status } = await within(this.temporal, CONTROL_READ_MS, () => handle.describe());
      if (status.name === 'RUNNING' || status.name === 'COMPLETED' || status.name === 'CONTINUED_AS_NEW') {
        throw new PlatError(
          'CONFLICT',
          `call ${callId} has not failed (it is ${status.name.toLowerCase()}): only a failed call is retried`,
        );
      }
      const history = await within(this.temporal, CONTROL_READ_MS, () => handle.fetchHistory());
      const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      if (!payload) throw new PlatError('INTERNAL', `call ${callId} has no request in its history`);
      const input = defaultPayloadConverter.fromPayload<CallInput>(payload);
      await within(this.temporal, CONTROL_READ_MS, () =>
        this.temporal.workflow.start(WORKFLOW_TYPES.call, {
          workflowId: workflowIds.call(callId),
          taskQueue: this.settings.taskQueue,
          args: [{ ...input, acceptedAt: new Date().toISOString() }],
          workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
        }),
      );
    } catch (error) {
      if (error instanceof WorkflowNotFoundError)
        throw new PlatError('NOT_FOUND', `no call ${callId}; see plat calls ${functionOfCall(callId)}`);
      if (error instanceof WorkflowExecutionAlreadyStartedError) throw new PlatError('CONFLICT', `call ${callId} is running again already`);
      throw toPlatError(error, 'INTERNAL');
    }
  }

  private async exists(workflowId: string): Promise<boolean> {
    try {
      await within(this.temporal, CONTROL_READ_MS, () => this.temporal.workflow.getHandle(workflowId).describe());
      return true;
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return false;
      throw toPlatError(error, 'INTERNAL');
    }
  }
}

function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

/** 202 with the call id, in the body, in X-Call-Id, and where its state is (Location). */
function acceptedAnswer(callId: string): Response {
  return Response.json({ callId }, { status: 202, headers: { 'x-call-id': callId, location: `/calls/${callId}` } });
}

/** The path the function sees: `/async-function/<name>/a?b` arrives as `/a?b`. */
function asyncFunctionPath(url: string): string {
  return functionPath(url.replace('/async-function/', '/function/'));
}

/** A callback URL whose host resolves, to addresses a callback may reach (lib/callback-policy.ts); 400 otherwise. */
async function allowedCallback(url: string): Promise<void> {
  try {
    await checkCallbackUrl(url);
  } catch (error) {
    if (error instanceof CallbackRefused) throw new PlatError('BAD_REQUEST', error.message);
    const host = new URL(url).hostname;
    throw new PlatError('BAD_REQUEST', `X-Callback-Url's host ${host.slice(0, 100)} does not resolve (${(error as Error).message})`);
  }
}
