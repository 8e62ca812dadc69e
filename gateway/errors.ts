import { Elysia } from 'elysia';
import { type ErrorBody, PlatError } from '../lib/errors';
import { REQUEST_ID_HEADER, takeRequestIdHeader } from './invoke/request-id';

function body(code: ErrorBody['error']['code'], message: string): ErrorBody {
  return { error: { code, message } };
}

/**
 * Maps every error to `{ error: { code, message } }` with its status, once for the whole app.
 * Unexpected errors are logged with their stack here and answered without it.
 */
export const errorHandling = new Elysia({ name: 'errors' })
  .error({ PlatError })
  .onError({ as: 'global' }, ({ code, error, set, request }) => {
    // The invoke path has set the request's id on its headers already; any other route gets one here.
    const requestId = takeRequestIdHeader(request.headers);
    set.headers[REQUEST_ID_HEADER] = requestId;
    if (error instanceof PlatError) return platformError(error, requestId, set);
    switch (code) {
      case 'NOT_FOUND':
        set.status = 404;
        return body('NOT_FOUND', 'no such route; see the README for the API');
      case 'VALIDATION': {
        // An answer that breaks its own schema is the platform's bug, not the client's.
        if (error.type === 'response') {
          console.error(`INTERNAL (request ${requestId}): an answer does not match its schema:`, error.all);
          set.status = 500;
          return body('INTERNAL', 'internal error; see the gateway log');
        }
        set.status = 400;
        if (error.customError !== undefined) return body('BAD_REQUEST', String(error.customError));
        const problem = error.valueError;
        const where = `${error.type}${problem?.path ? problem.path.replaceAll('/', '.') : ''}`;
        return body('BAD_REQUEST', `${where}: ${problem?.message ?? 'is not valid'}; see /openapi.json for what this route takes`);
      }
      case 'PARSE':
        set.status = 400;
        return body('BAD_REQUEST', 'the request body could not be parsed');
      default:
        return unexpected(error, requestId, set);
    }
  });

interface Answer {
  status?: number | string;
  headers: Record<string, string | number>;
}

/** A PlatError's answer: its status, its code in `x-plat-error` (which tells the platform's errors apart from a function's answers), and the headers its code calls for. */
function platformError(error: PlatError, requestId: string, set: Answer): ErrorBody {
  set.status = error.status;
  // Answers of 500 and more are the platform's (or a function's) failures: logged once, with what caused them.
  if (error.status >= 500) {
    console.error(`${error.code} (request ${requestId}): ${error.message}`, ...(error.cause ? [error.cause] : []));
  }
  set.headers['x-plat-error'] = error.code;
  if (error.code === 'UNAUTHORIZED') set.headers['www-authenticate'] = 'Bearer';
  if (error.code === 'TOO_MANY_REQUESTS') set.headers['retry-after'] = '1';
  return error.toJSON();
}

function unexpected(error: unknown, requestId: string, set: Answer): ErrorBody {
  console.error(`INTERNAL (request ${requestId}):`, error);
  set.status = 500;
  return body('INTERNAL', 'internal error; see the gateway log');
}

/** The same answers as `errorHandling`, for the routes Bun serves before Elysia (the invoke path). */
export function errorResponse(error: unknown, request: Request): Response {
  const { status, headers, body } = errorAnswer(error, takeRequestIdHeader(request.headers));
  return new Response(body, { status, headers });
}

/** The same answer's parts (status, headers with the request's id, the JSON body), for the invoke front (invoke/front.ts). */
export function errorAnswer(error: unknown, requestId: string): { status: number; headers: Record<string, string>; body: string } {
  const set: Answer = { headers: { [REQUEST_ID_HEADER]: requestId } };
  const answer = error instanceof PlatError ? platformError(error, requestId, set) : unexpected(error, requestId, set);
  const headers = { ...(set.headers as Record<string, string>), 'content-type': 'application/json' };
  return { status: Number(set.status), headers, body: JSON.stringify(answer) };
}
