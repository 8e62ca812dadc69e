/**
 * An answer of JSON lines, one per item of `items`, streamed as they come (the deploy's progress,
 * a function's log). With `keepaliveMs`, an empty line goes out at once (so the headers do not wait
 * for the first item) and again at that interval, so no idle timeout closes a quiet stream; readers
 * skip empty lines. A client that goes away ends the generator (and calls `onCancel`).
 */
export function ndjsonResponse<T>(items: AsyncGenerator<T>, options: { keepaliveMs?: number; onCancel?: () => void } = {}): Response {
  const encoder = new TextEncoder();
  let keepalive: ReturnType<typeof setInterval> | undefined;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      if (!options.keepaliveMs) return;
      controller.enqueue(encoder.encode('\n'));
      keepalive = setInterval(() => controller.enqueue(encoder.encode('\n')), options.keepaliveMs);
    },
    async pull(controller) {
      const next = await items.next();
      if (next.done) {
        clearInterval(keepalive);
        controller.close();
      } else controller.enqueue(encoder.encode(`${JSON.stringify(next.value)}\n`));
    },
    cancel() {
      clearInterval(keepalive);
      options.onCancel?.();
      void items.return(undefined);
    },
  });
  return new Response(stream, { status: 200, headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' } });
}
