import { FUNCTION_NAME_PATTERN, VERSION_PATTERN } from '../../lib/names';

/** NAME or NAME@VERSION. */
const TARGET_PATTERN = `^(?:${FUNCTION_NAME_PATTERN.source.replaceAll('^', '').replaceAll('$', '')})(?:@${VERSION_PATTERN.source.slice(1, -1)})?$`;

/**
 * The invoke routes, documented by hand: they take and answer anything (the function decides), so
 * Elysia checks nothing on them and the hot path pays for no schema.
 */
const description =
  "The function's answer, whatever its status, headers and body. The platform's own errors (401 without a valid " +
  'token or key, 404 for no such function, 502/503/504 for an instance that failed, could not start or took too ' +
  'long) carry an `x-plat-error` header and the JSON error shape `{ error: { code, message } }`.';

const operation = (summary: string, extra: object[] = []) => ({
  summary,
  security: [{ bearer: [] }, {}],
  parameters: [
    {
      name: 'name',
      in: 'path',
      required: true,
      schema: { type: 'string', pattern: TARGET_PATTERN },
      description: 'The function, or NAME@VERSION for a kept version (URL-encode the @ as %40 where needed)',
    },
    ...extra,
  ],
  requestBody: { required: false, content: { '*/*': { schema: {} } } },
  responses: {
    // No content type is promised: a function may answer with any, or none (a HEAD, a 204).
    default: { description },
  },
});

/** `/function/{name}`. */
export const invokeRoot = operation('Invoke a function at its root path (any method); a public function needs no token');

/** `/function/{name}/{path}`, which Elysia routes as a wildcard the OpenAPI document cannot name. */
export const invokePath = operation('Invoke a function at a path (any method)', [
  { name: 'path', in: 'path', required: true, schema: { type: 'string' }, description: 'The rest of the path, as the function sees it' },
]);

/** The methods a function answers, in the document (OpenAPI has no "any"). */
export const INVOKE_METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options'] as const;
