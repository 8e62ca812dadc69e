import { readFile } from 'node:fs/promises';
import { type Api, CliError, errorFrom } from '../api';

export interface InvokeOptions {
  method?: string;
  data?: string;
  header?: string | string[];
  include?: boolean;
}

async function body(data: string | undefined): Promise<string | Uint8Array | undefined> {
  if (data === undefined) return undefined;
  if (data === '@-') return new Uint8Array(await Bun.stdin.arrayBuffer());
  if (data.startsWith('@')) {
    return new Uint8Array(
      await readFile(data.slice(1)).catch(() => {
        throw new CliError(`cannot read ${data.slice(1)}`);
      }),
    );
  }
  return data;
}

/** The request's headers from -H, checked. */
function requestHeaders(options: InvokeOptions): Headers {
  const headers = new Headers();
  for (const header of [options.header ?? []].flat()) {
    const colon = header.indexOf(':');
    if (colon <= 0) throw new CliError(`header "${header}" must look like "Name: value"`);
    headers.append(header.slice(0, colon).trim(), header.slice(colon + 1).trim());
  }
  return headers;
}

/** plat invoke NAME [PATH]: sends one request to the function and streams its answer to stdout. */
export async function invoke(api: Api, name: string, path: string | undefined, options: InvokeOptions): Promise<number> {
  const headers = requestHeaders(options);
  const payload = await body(options.data);
  if (payload !== undefined && !headers.has('content-type') && typeof payload === 'string' && /^\s*[[{]/.test(payload)) {
    headers.set('content-type', 'application/json');
  }
  const method = (options.method ?? (payload === undefined ? 'GET' : 'POST')).toUpperCase();
  const suffix = path ? `/${path.replace(/^\/+/, '')}` : '';
  const response = await api.request(`/function/${encodeURIComponent(name)}${suffix}`, {
    method,
    headers,
    body: payload as BodyInit | undefined,
  });

  if (response.headers.has('x-plat-error')) throw await errorFrom(response);
  if (options.include) {
    let head = `HTTP/1.1 ${response.status} ${response.statusText}\n`;
    for (const [key, value] of response.headers) head += `${key}: ${value}\n`;
    process.stdout.write(`${head}\n`);
  }
  if (response.body) {
    for await (const chunk of response.body) process.stdout.write(chunk);
  }
  return response.status;
}

/** plat invoke NAME [PATH] --async: the call is accepted at once; prints its id. */
export async function invokeAsync(
  api: Api,
  name: string,
  path: string | undefined,
  options: InvokeOptions & { callback?: string; key?: string },
  json: boolean,
): Promise<string> {
  const headers = requestHeaders(options);
  if (options.callback) headers.set('x-callback-url', options.callback);
  if (options.key) headers.set('idempotency-key', options.key);
  const payload = await body(options.data);
  const suffix = path ? `/${path.replace(/^\/+/, '')}` : '';
  const { callId } = await api.json<{ callId: string }>(`/async-function/${encodeURIComponent(name)}${suffix}`, {
    method: (options.method ?? 'POST').toUpperCase(),
    headers,
    body: payload as BodyInit | undefined,
  });
  return json ? JSON.stringify({ callId }) : callId;
}
