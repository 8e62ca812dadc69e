import { type TSchema, t } from 'elysia';
import { ERROR_CODES, type ErrorCode } from '../lib/errors';
import { FUNCTION_NAME_PATTERN, functionNameProblem } from '../lib/names';

/**
 * What every feature's model.ts builds on: the error shape, the path parameters, and the few
 * OpenAPI pieces Elysia cannot infer from a route (bodies the route reads itself, streamed answers).
 */

export const ErrorBody = t.Object(
  {
    error: t.Object({
      code: t.UnionEnum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]], {
        description: 'A stable code to act on; the HTTP status follows from it',
      }),
      message: t.String({ description: 'What was wrong and what to do, for a person' }),
    }),
  },
  { description: 'The platform refused or failed the request' },
);

/**
 * The error answers a route can give, by status: every route may get 400 (a malformed request),
 * 413 and 431 (sizes, checked before routing); `statuses` adds the route's own (401, 404, 409…).
 */
const ANY_ROUTE = [400, 413, 431] as const;

export function errors<S extends number>(...statuses: S[]) {
  const all = [...ANY_ROUTE, ...statuses];
  return Object.fromEntries(all.map((status) => [status, ErrorBody])) as Record<(typeof ANY_ROUTE)[number] | S, typeof ErrorBody>;
}

/** A route that needs the admin token (or, for invoke routes, a key or a JWT): 401 without it, 5xx when Temporal is away. */
export const ADMIN_ERRORS = [401, 500, 503] as const;

/**
 * A path parameter with its pattern: in the document, and checked before the route runs with the
 * message the name checks of lib/names.ts give (Elysia passes the whole params object as `found`).
 */
export function pathParam(pattern: RegExp, key: string, problem: (value: unknown) => string | undefined, description: string) {
  return t.String({
    pattern: pattern.source,
    description,
    error: ({ found }: { found: unknown }) => problem((found as Record<string, unknown> | undefined)?.[key]) ?? `${key} is not valid`,
  });
}

export const FunctionName = pathParam(
  FUNCTION_NAME_PATTERN,
  'name',
  functionNameProblem,
  'The function: 1-48 lowercase letters, digits and dashes, starting with a letter and not ending with a dash',
);

export const NameParam = t.Object({ name: FunctionName });

/** A schema documented as an `application/json` request body that the route reads and checks itself (`parse: 'none'`). */
export function jsonBody(schema: TSchema, required = true) {
  return { required, content: { 'application/json': { schema } } };
}

/** A streamed answer, one JSON document per line: documented, not checked by Elysia (the route answers a Response). */
export function ndjsonAnswer(description: string, line: TSchema) {
  return { description, content: { 'application/x-ndjson': { schema: line } } };
}

/** The OpenAPI form of error answers, for routes documented by hand (`detail.responses`). */
export function errorAnswers(...statuses: number[]) {
  return Object.fromEntries(
    [...ANY_ROUTE, ...statuses].map((status) => [
      status,
      { description: `Error ${status}`, content: { 'application/json': { schema: ErrorBody } } },
    ]),
  );
}

export const Health = t.Object({ status: t.Literal('ok') });
