// The runtime contract for Node.js: serve the user's `export default { fetch(request) }` on PORT,
// answer GET /_/health when ready, turn an uncaught exception into a 500 (the process stays up),
// and stop gracefully on SIGTERM: finish in-flight requests, then exit. Node's http server speaks
// IncomingMessage/ServerResponse, so requests and responses are adapted to and from the Web
// standard Request/Response, with bodies streamed both ways.
// A request names the instance it was routed to (x-plat-instance); one meant for another instance
// (a route that outlived its container, whose address this container now has) is refused with 421
// and never reaches the function. A request that names none (a check from the host) is served.
import { once } from 'node:events';
import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';

const HEALTH_PATH = '/_/health';
const GRACE_MS = Number(process.env.PLAT_GRACE_MS ?? 10_000);
const entry = process.env.PLAT_ENTRY ?? '/app/.plat/entry.mjs';
const INSTANCE_ID = process.env.PLAT_INSTANCE_ID;

const handler = (await import(pathToFileURL(entry).href)).default;
if (!handler || typeof handler.fetch !== 'function') {
  console.error(`${entry} must default-export an object with a fetch(request) method`);
  process.exit(1);
}

function toRequest(req) {
  const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const controller = new AbortController();
  req.socket.once('close', () => controller.abort());
  return new Request(url, {
    method: req.method,
    headers,
    body: hasBody ? Readable.toWeb(req) : undefined,
    duplex: 'half',
    signal: controller.signal,
  });
}

async function send(res, response) {
  const headers = {};
  for (const [key, value] of response.headers) {
    if (key === 'set-cookie') continue;
    headers[key] = value;
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  res.writeHead(response.status, response.statusText, headers);
  if (!response.body) return res.end();
  // Each chunk is written as it comes, so streamed answers reach the client as they are produced.
  for await (const chunk of response.body) {
    if (!res.write(chunk)) await once(res, 'drain');
  }
  res.end();
}

function failure(error) {
  return Response.json(
    { error: { code: 'FUNCTION_ERROR', message: error instanceof Error ? error.message : String(error) } },
    { status: 500 },
  );
}

const server = createServer(async (req, res) => {
  const named = req.headers['x-plat-instance'];
  if (named !== undefined && INSTANCE_ID && named !== INSTANCE_ID) {
    const body = JSON.stringify({ error: { code: 'MISDIRECTED_REQUEST', message: 'this request was routed to another instance' } });
    res.writeHead(421, { 'content-type': 'application/json', 'x-plat-refused': 'instance' }).end(body);
    req.resume();
    return;
  }
  if (req.url === HEALTH_PATH || req.url?.startsWith(`${HEALTH_PATH}?`)) {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  let response;
  try {
    response = await handler.fetch(toRequest(req));
    if (!(response instanceof Response)) throw new TypeError('fetch() must return a Response');
  } catch (error) {
    console.error(error);
    response = failure(error);
  }
  try {
    await send(res, response);
  } catch (error) {
    console.error(error);
    res.destroy(error);
  }
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 8080), '0.0.0.0', () => console.log(`listening on :${server.address().port}`));

process.on('SIGTERM', () => {
  setTimeout(() => process.exit(0), GRACE_MS).unref();
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
