import type { TokenCheck } from '../auth';
import { existsSync } from 'node:fs';
import { Elysia } from 'elysia';
import { PlatError } from '../../lib/errors';
import { type LogQuery, logsDir, REQUEST_ID_PATTERN, readLogs } from '../../lib/logs';
import { VERSION_PATTERN } from '../../lib/names';
import { parseDuration, type Settings } from '../../lib/settings';
import type { FunctionsService } from '../functions/service';
import { ADMIN_ERRORS, errorAnswers, NameParam, ndjsonAnswer } from '../model';
import { ndjsonResponse } from '../ndjson';
import * as model from './model';

/** Lines shown without `tail`: the last 100, or the last 10 before following. */
const DEFAULT_TAIL = 100;
const DEFAULT_FOLLOW_TAIL = 10;
/** A followed stream with nothing new writes an empty line this often, so no proxy or idle timeout closes it. */
const FOLLOW_KEEPALIVE_MS = 30_000;

/** The query string of `GET /functions/:name/logs`, checked. */
export function parseLogQuery(query: Record<string, string | undefined>, now = Date.now()): LogQuery {
  const follow = query.follow === 'true' || query.follow === '1';
  const result: LogQuery = { follow, tail: follow ? DEFAULT_FOLLOW_TAIL : DEFAULT_TAIL };
  if (query.tail !== undefined && query.tail !== '') {
    const tail = Number(query.tail);
    if (!Number.isInteger(tail) || tail < 0)
      throw new PlatError('BAD_REQUEST', `tail must be a whole number of lines, not "${query.tail}"`);
    result.tail = tail;
  }
  if (query.since) {
    const ago = parseDuration(query.since);
    const at = ago !== undefined ? now - ago : Date.parse(query.since);
    if (Number.isNaN(at)) {
      throw new PlatError(
        'BAD_REQUEST',
        `since must be a duration such as 10m or 2h, or an ISO time such as 2026-12-01T10:00:00Z, not "${query.since}"`,
      );
    }
    result.since = at;
  }
  if (query.version) {
    if (!VERSION_PATTERN.test(query.version))
      throw new PlatError('BAD_REQUEST', `"${query.version}" is not a version id (see plat versions)`);
    result.version = query.version;
  }
  if (query.request) {
    if (!REQUEST_ID_PATTERN.test(query.request)) {
      throw new PlatError('BAD_REQUEST', 'request must be a request id: 1-128 letters, digits and ._:@/+=-');
    }
    result.requestId = query.request;
  }
  return result;
}

/** `GET /functions/:name/logs`: the function's log as JSON lines (lib/logs.ts), streamed; `follow` keeps it open. */
export function logsRoutes(functions: FunctionsService, settings: Settings, checkToken: TokenCheck) {
  return new Elysia({ name: 'logs' }).get(
    '/functions/:name/logs',
    async ({ params, query, request }) => {
      const logQuery = parseLogQuery(query);
      // No log at all: a function that does not exist is a 404, one that never wrote anything an empty log.
      if (!existsSync(logsDir(settings.dataDir, params.name))) await functions.get(params.name);
      const abort = new AbortController();
      request.signal.addEventListener('abort', () => abort.abort(), { once: true });
      const records = readLogs(settings.dataDir, params.name, logQuery, settings.logs, abort.signal);
      // Following, an empty line goes out at once and every 30 s (see ndjsonResponse).
      return ndjsonResponse(records, { keepaliveMs: logQuery.follow ? FOLLOW_KEEPALIVE_MS : undefined, onCancel: () => abort.abort() });
    },
    {
      transform: checkToken,
      params: NameParam,
      query: model.LogQuery,
      detail: {
        summary: "The function's log, as JSON lines; with follow, as it is written",
        responses: {
          200: ndjsonAnswer('One log line per line; following, an empty line every 30 s', model.LogLine),
          ...errorAnswers(...ADMIN_ERRORS, 404),
        },
      },
    },
  );
}
