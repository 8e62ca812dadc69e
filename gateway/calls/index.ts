import type { BunRequest, Server } from 'bun';
import { Elysia } from 'elysia';
import { bearerToken, type TokenCheck } from '../auth';
import { errorResponse } from '../errors';
import { clientAddress } from '../invoke/front';
import { ADMIN_ERRORS, errors, NameParam } from '../model';
import * as model from './model';
import type { CallsService } from './service';

/**
 * `/async-function/:name[/*]`, any method: accepted at once with a call id (202). Served by Bun's
 * router before Elysia like the invoke routes (the body is any, and read whole), documented by hand
 * (./model.ts).
 */
export function asyncRoutes(service: CallsService) {
  const handler = (request: BunRequest, server: Server<unknown>): Promise<Response> =>
    service
      .accept(request.params.name ?? '', request, clientAddress(server.requestIP(request)))
      .catch((error) => errorResponse(error, request));
  return { '/async-function/:name': handler, '/async-function/:name/*': handler };
}

/**
 * `GET /calls/:id`: a call's state (the admin token, or what may invoke the call's function);
 * `GET /functions/:name/calls` and `POST /calls/:id/retry`: the management side (admin).
 */
export function callsRoutes(service: CallsService, checkToken: TokenCheck) {
  return new Elysia({ name: 'calls' })
    .get(
      '/functions/:name/calls',
      async ({ params, query }) => ({
        calls: await service.list(params.name, { failed: query.failed === true, limit: query.limit }),
      }),
      {
        transform: checkToken,
        params: NameParam,
        query: model.CallListQuery,
        response: { 200: model.CallList, ...errors(404, ...ADMIN_ERRORS) },
        detail: { summary: "A function's recent async calls, newest first" },
      },
    )
    .get('/functions/:name/schedules', async ({ params }) => ({ schedules: await service.schedules(params.name) }), {
      transform: checkToken,
      params: NameParam,
      response: { 200: model.ScheduleList, ...errors(404, ...ADMIN_ERRORS) },
      detail: { summary: "A function's schedules (its active version's), with their next and recent runs" },
    })
    .post(
      '/calls/:id/retry',
      async ({ params }) => {
        await service.retry(params.id);
        return { retried: { callId: params.id } };
      },
      {
        transform: checkToken,
        params: model.CallIdParam,
        response: { 200: model.Retried, ...errors(404, 409, ...ADMIN_ERRORS) },
        detail: { summary: 'Run a failed call again from its first attempt (a dead-letter redrive)' },
      },
    )
    .get('/calls/:id', async ({ params, request }) => ({ call: await service.get(params.id, bearerToken(request)) }), {
      params: model.CallIdParam,
      response: { 200: model.CallAnswer, ...errors(404, ...ADMIN_ERRORS) },
      detail: { summary: "An async call's state: queued, running, succeeded or failed, its attempts and its result" },
    });
}
