// A plat function: a Web-standard fetch handler. The same file runs on Bun, Deno and Node.
export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.text();
    return Response.json({
      message: 'Hello from plat!',
      method: request.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body: body || undefined,
    });
  },
};
