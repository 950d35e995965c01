/**
 * The per-stage CPU budget of one POST or one poll, from a profile (`profile-top.ts
 * --stages=post|poll`): each busy sample goes to the first stage that a frame of its stack
 * matches, walking from the leaf up. Leaf-first, so a socket write or a garbage collection
 * counts as such whoever caused it. Work resumed from an `await` on a database or Redis reply
 * starts its stack at the event loop: the client libraries' parsing of replies then has a
 * stage of its own, not the caller's.
 */
type Stage = readonly [name: string, frame: RegExp];

const SHARED_LEAVES: Stage[] = [
  ['garbage collection', /^\(garbage collector\)$/],
  ['socket writes (responses, PostgreSQL, Redis)', /^(writev|writeBuffer|writeUtf8String|writevGeneric|writeGeneric)( |$)/],
  ['metrics', /prom-client|src\/operations\/metrics/],
  ['logging', /nm:pino|src\/operations\/log/],
];

const SHARED_HTTP: Stage[] = [
  ['response (Hono context, node-server)', /nm:hono\/dist\/context|nm:@hono\/node-server|_http_outgoing/],
  ['HTTP parsing (node:http)', /_http_server|_http_incoming|_http_common/],
  ['framework (Hono routing, compose)', /nm:hono|nm:@hono/],
  ['other src/', /src\//],
];

export const STAGES: Record<'post' | 'poll', Stage[]> = {
  post: [
    ...SHARED_LEAVES,
    ['body read', /^\(anonymous\) src\/http\/json-body|BoundedRead|readBounded|__name src\/http\/json-body/],
    ['JSON parse and checks', /checkJson|checkValue/],
    ['validation (zod, text rules)', /zod|hono\/dist\/validator|textProblem|codePoints|checkText/],
    ['authentication', /^\(anonymous\) src\/http\/session|clientAddress|authenticate |src\/identity\/tokens|principal src\/identity/],
    ['flood control', /flood-control|src\/ratelimit\//],
    ['access check', /asSpeaker|asMember|findChannelAccess/],
    ['append: seq', /sequence src\/log|src\/sequencer\//],
    ['append: insert', /insertEvents|^\(anonymous\) src\/storage\/drizzle\/logs/],
    ['append: publish (frame, HMAC)', /publish src\/(log|bus)|src\/bus\//],
    ['PostgreSQL client (postgres-js, drizzle)', /nm:postgres\/|nm:drizzle-orm/],
    ['Redis client (ioredis: flood control, seq, publish)', /nm:ioredis/],
    ['append: batching, rows, events', /src\/log\/|src\/messages\//],
    ['activity (idle clock)', /src\/http\/activity|src\/identity\/activity|recordActivity/],
    ...SHARED_HTTP,
  ],
  poll: [
    ...SHARED_LEAVES,
    ['validation (zod query)', /zod|hono\/dist\/validator/],
    ['authentication', /^\(anonymous\) src\/http\/session|clientAddress|authenticate |src\/identity\/tokens|principal src\/identity|findLiveSession |touchSessions/],
    ['flood control', /flood-control|src\/ratelimit\//],
    ['access check (grant, followed logs)', /readGrant|asReader|asMember|confirmReader|allowedLogs|userLogs|findChannelAccess|accessEndAfter/],
    ['session watch', /session-watch|findLiveSessionById/],
    ['answer (body, cursor, write)', /writeJson|encodeUserCursor|answerOf|textAnswer|src\/realtime\/user-poll|answer/],
    ['poll: park, wake, followers', /src\/realtime\//],
    ['PostgreSQL client (postgres-js, drizzle)', /nm:postgres\/|nm:drizzle-orm/],
    ['Redis client (ioredis)', /nm:ioredis/],
    ...SHARED_HTTP,
  ],
};

export const REST = 'other (Node internals, promises, timers)';

/** The stage of a sample, given the labels of its stack from the leaf up. */
export function stageOf(stages: Stage[], stack: Iterable<string>): string {
  for (const frame of stack) {
    if (frame === '(program)') return REST;
    const stage = stages.find(([, re]) => re.test(frame));
    if (stage) return stage[0];
  }
  return REST;
}
