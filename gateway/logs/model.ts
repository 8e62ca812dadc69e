import { t } from 'elysia';

/** The query and the lines of `GET /functions/:name/logs`. */

export const LogQuery = t.Object({
  follow: t.Optional(t.String({ description: '`true`: keep the stream open and send new lines as they come' })),
  tail: t.Optional(t.String({ description: 'The last N lines (100; 10 when following)' })),
  since: t.Optional(t.String({ description: 'A duration back from now (10m, 2h) or an ISO time' })),
  version: t.Optional(t.String({ description: "One version's lines only" })),
  request: t.Optional(t.String({ description: "One request's lines only, by its x-request-id" })),
});

export const LogLine = t.Object({
  time: t.String({ description: 'ISO 8601 with milliseconds' }),
  instance: t.Optional(t.String({ description: "The container's 12-hex short id" })),
  version: t.Optional(t.String()),
  stream: t.UnionEnum(['stdout', 'stderr', 'plat']),
  text: t.String(),
  requestId: t.Optional(t.String()),
});
