// The runtime contract for Node.js: serve the user's `export default { fetch(request, env, ctx) }`
// on PORT (and on the platform's socket, PLAT_SOCKET), turn an uncaught exception into a 500 (the
// process stays up), and stop gracefully on SIGTERM: finish in-flight requests and ctx.waitUntil
// work, then exit. Node's http server speaks
// IncomingMessage/ServerResponse, so requests and responses are adapted to and from the Web
// standard Request/Response, with bodies streamed both ways. The instance check, the platform's
// routes and env/ctx are the JS runtimes' shared contract (contract.mjs).
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { createContract } from './contract.mjs';

const GRACE_MS = Number(process.env.PLAT_GRACE_MS ?? 10_000);
const entry = process.env.PLAT_ENTRY ?? '/app/.plat/entry.mjs';
const contract = createContract((name) => process.env[name]);

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

/** Serves a request; `checked`: the instance check and the platform's routes first (PORT's requests; see contract.mjs). */
const serve = (checked) => async (req, res) => {
  let response;
  if (checked) {
    const pathname = (req.url ?? '/').split('?', 1)[0];
    response = contract.platformAnswer(pathname, req.headers['x-plat-instance'], req.headers['x-plat-probe']);
  }
  if (response) {
    req.resume(); // a refused or platform request's body is never read
  } else {
    const request = toRequest(req);
    response = await contract.run(request, () => handler.fetch(request, contract.env, contract.context()));
  }
  try {
    await send(res, response);
  } catch (error) {
    console.error(error);
    res.destroy(error);
  }
};

// The platform's socket first, so it is there once the health route answers.
async function serveSocket(path) {
  if (!path) return undefined;
  const direct = createServer(serve(false));
  direct.keepAliveTimeout = 65_000;
  try {
    rmSync(path, { force: true });
    // A full backlog refuses a Unix connection at once (TCP would retry its SYN): a deep one.
    await new Promise((resolve, reject) => direct.once('error', reject).listen({ path, backlog: 4096 }, resolve));
    return direct;
  } catch (error) {
    console.error(`the platform's socket is not served (${error.message}); requests come over TCP`);
    return undefined;
  }
}
const direct = await serveSocket(process.env.PLAT_SOCKET);
const server = createServer(serve(true));
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 8080), '0.0.0.0', () => console.log(`listening on :${server.address().port}`));

process.on('SIGTERM', () => {
  setTimeout(() => process.exit(0), GRACE_MS).unref();
  const closed = [server, direct].filter(Boolean).map((listening) => new Promise((resolve) => listening.close(resolve)));
  void Promise.all(closed).then(() => contract.idle(GRACE_MS).then(() => process.exit(0)));
  server.closeIdleConnections();
  direct?.closeIdleConnections();
});
