import { t } from 'elysia';
import { CALL_ID_PATTERN, FUNCTION_NAME_PATTERN } from '../../lib/names';
import { errorAnswers, pathParam } from '../model';

export const CallIdParam = t.Object({
  id: pathParam(
    CALL_ID_PATTERN,
    'id',
    (id) => `"${String(id)}" is not a call id: it is the function's name, a dot and 32 hex digits, as POST /async-function/NAME answered`,
    "The call's id, as POST /async-function/NAME answered it",
  ),
});

const Blob = t.Object({ digest: t.String(), size: t.Integer() });

export const CallState = t.Object({
  callId: t.String(),
  name: t.String(),
  status: t.UnionEnum(['queued', 'running', 'succeeded', 'failed']),
  trigger: t.UnionEnum(['api', 'schedule']),
  acceptedAt: t.String(),
  attempts: t.Array(
    t.Object({
      attempt: t.Integer(),
      startedAt: t.String(),
      durationMs: t.Number(),
      status: t.Optional(t.Integer()),
      error: t.Optional(t.String()),
    }),
  ),
  result: t.Optional(
    t.Object({
      status: t.Integer(),
      headers: t.Array(t.Tuple([t.String(), t.String()])),
      body: t.Optional(Blob),
    }),
  ),
  callback: t.Optional(t.UnionEnum(['pending', 'delivered', 'failed'])),
  endedAt: t.Optional(t.String()),
});

export const CallAnswer = t.Object({ call: CallState });

/** `POST /async-function/{name}[/{path}]`, documented by hand like the invoke routes (it takes any body). */
const accepted = (summary: string, extra: object[] = []) => ({
  summary,
  security: [{ bearer: [] }, {}],
  parameters: [
    {
      name: 'name',
      in: 'path',
      required: true,
      schema: { type: 'string', pattern: FUNCTION_NAME_PATTERN.source },
      description: 'The function',
    },
    ...extra,
    {
      name: 'Idempotency-Key',
      in: 'header',
      required: false,
      schema: { type: 'string', maxLength: 256 },
      description:
        'A second call with the same key (within the namespace retention, 24 h by default) answers the first call id and invokes nothing',
    },
    {
      name: 'X-Callback-Url',
      in: 'header',
      required: false,
      schema: { type: 'string', format: 'uri' },
      description: "Where the call's result is POSTed when it ends (http or https)",
    },
  ],
  requestBody: { required: false, content: { '*/*': { schema: {} } } },
  responses: {
    202: {
      description: 'Accepted: the call runs as the workflow call/NAME/ID',
      headers: { 'X-Call-Id': { schema: { type: 'string' } } },
      content: { 'application/json': { schema: { type: 'object', properties: { callId: { type: 'string' } }, required: ['callId'] } } },
    },
    ...errorAnswers(401, 404, 500, 503),
  },
});

export const asyncRoot = accepted('Call a function asynchronously at its root path');
export const asyncPath = accepted('Call a function asynchronously at a path', [
  { name: 'path', in: 'path', required: true, schema: { type: 'string' }, description: 'The rest of the path, as the function sees it' },
]);

export const CallList = t.Object({
  calls: t.Array(
    t.Object({
      callId: t.String(),
      trigger: t.UnionEnum(['api', 'schedule']),
      status: t.UnionEnum(['queued', 'running', 'succeeded', 'failed']),
      startedAt: t.String(),
      endedAt: t.Optional(t.String()),
    }),
  ),
});

export const CallListQuery = t.Object({
  failed: t.Optional(t.BooleanString({ description: 'Only the calls that failed' })),
  limit: t.Optional(t.Numeric({ minimum: 1, maximum: 1000, description: 'How many, newest first (default 50)' })),
});

export const Retried = t.Object({ retried: t.Object({ callId: t.String() }) });

export const ScheduleList = t.Object({
  schedules: t.Array(
    t.Object({
      id: t.String(),
      cron: t.Optional(t.String()),
      every: t.Optional(t.String()),
      timezone: t.Optional(t.String()),
      method: t.String(),
      path: t.String(),
      overlap: t.UnionEnum(['skip', 'bufferOne', 'allow']),
      paused: t.Boolean(),
      nextRuns: t.Array(t.String()),
      recentRuns: t.Array(t.Object({ at: t.String(), callId: t.String() })),
    }),
  ),
});
