import type { LogLevel } from '../config.js';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type Logger = Record<Exclude<LogLevel, 'silent'>, (msg: string, fields?: Record<string, unknown>) => void>;

/** Structured logs: one JSON object per line on stdout. Never pass tokens or passwords. */
export function createLogger(level: LogLevel, write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  const at =
    (name: Exclude<LogLevel, 'silent'>) =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      if (RANK[name] < RANK[level]) return;
      write(`${JSON.stringify({ time: new Date().toISOString(), level: name, msg, ...fields })}\n`);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

// Error text can quote SQL parameters, token hashes, passwords and message bodies (Drizzle's
// "Failed query: … params: …", PostgreSQL's "invalid input syntax …", JSON.parse's excerpts):
// log class names, codes and stack frames, and a message only where it cannot carry them.
const MAX_CHAIN = 8;
const MAX_FRAMES = 10;
const MAX_MESSAGE = 500;
/** SQLSTATE: five characters whose class starts with a digit or is F0, HV, P0 or XX (errno codes start with E). */
const SQLSTATE = /^(?:[0-9][0-9A-Z]|F0|HV|P0|XX)[0-9A-Z]{3}$/;
/** Node system and driver codes: ECONNREFUSED, ERR_…, postgres-js's CONNECTION_CLOSED, CONNECT_TIMEOUT. */
const SYSTEM_CODE = /^[A-Z][A-Z0-9_]{1,63}$/;
const IDENTIFIER = /^[\w$.-]{1,64}$/;
const FRAME = /^\s+at \S.{0,300}$/;

type ErrorLike = { message?: unknown; name?: unknown; stack?: unknown; code?: unknown; cause?: unknown; errors?: unknown; constructor?: { name?: unknown } };

/** The error and its causes (and an AggregateError's errors), outermost first, without cycles. */
function chainOf(err: unknown): ErrorLike[] {
  const chain: ErrorLike[] = [];
  const queue: unknown[] = [err];
  while (queue.length > 0 && chain.length < MAX_CHAIN) {
    const e = queue.shift();
    if (typeof e !== 'object' || e === null || chain.includes(e as ErrorLike)) continue;
    chain.push(e as ErrorLike);
    const { cause, errors } = e as ErrorLike;
    if (cause !== undefined) queue.push(cause);
    if (Array.isArray(errors)) queue.push(...errors.slice(0, 3));
  }
  return chain;
}

function className(e: ErrorLike): string {
  const ctor = typeof e.constructor?.name === 'string' ? e.constructor.name : '';
  const name = typeof e.name === 'string' ? e.name : '';
  // Bundled drivers minify class names (PGlite's errors are `O`, named "error").
  const chosen = ctor.length >= 3 && ctor !== 'Object' ? ctor : name || ctor;
  return IDENTIFIER.test(chosen) ? chosen : 'Error';
}

const messageOf = (e: ErrorLike): string => (typeof e.message === 'string' ? e.message : '');

const isQueryError = (e: ErrorLike): boolean => messageOf(e).startsWith('Failed query:') || className(e) === 'DrizzleQueryError';
const isDatabaseError = (e: ErrorLike): boolean => (typeof e.code === 'string' && SQLSTATE.test(e.code)) || isQueryError(e);

const isSyntaxError = (e: ErrorLike): boolean => e instanceof SyntaxError || e.name === 'SyntaxError';

/** A message with anything after "params:" cut and its length capped. */
function scrub(message: string): string {
  const params = message.search(/\bparams:/i);
  const kept = params >= 0 ? `${message.slice(0, params).trimEnd()} [params omitted]` : message;
  return kept.length > MAX_MESSAGE ? `${kept.slice(0, MAX_MESSAGE)}…` : kept;
}

/** The "    at …" lines after the message (which the stack's first lines repeat), at most ten. */
function framesOf(e: ErrorLike): string[] | undefined {
  if (typeof e.stack !== 'string') return undefined;
  const message = messageOf(e);
  const at = message ? e.stack.indexOf(message) : -1;
  // The header is "Name: message", and a message can span lines that look like frames.
  const rest = at >= 0 ? e.stack.slice(at + message.length) : e.stack.slice(e.stack.search(/\n\s+at /) + 1 || e.stack.length);
  const frames = rest
    .split('\n')
    .filter((line) => FRAME.test(line))
    .slice(0, MAX_FRAMES)
    .map((line) => line.trim());
  return frames.length > 0 ? frames : undefined;
}

/** Log fields for an error, safe at every level: error text can quote SQL params, tokens and message bodies. */
export function errorFields(err: unknown): Record<string, unknown> {
  const chain = chainOf(err);
  const top = chain[0];
  if (top === undefined) return { error: scrub(String(err)) };
  const codes = chain.map((e) => e.code).filter((code): code is string => typeof code === 'string');
  const sqlState = codes.find((code) => SQLSTATE.test(code));
  const code = codes.find((code) => !SQLSTATE.test(code) && SYSTEM_CODE.test(code));
  const fields: Record<string, unknown> = { errorClass: chain.map(className).join(' < ') };
  if (chain.some(isDatabaseError)) {
    // Neither the driver's text nor ours: both can quote the statement's values.
    fields.error = chain.some(isQueryError) ? 'database query failed' : 'database error';
  } else if (chain.some(isSyntaxError)) {
    // V8 quotes the input it failed on: `… "{"text":"priv"… is not valid JSON`.
    fields.error = chain.some((e) => isSyntaxError(e) && /JSON/.test(messageOf(e))) ? 'malformed JSON' : 'syntax error';
  } else {
    fields.error = scrub(messageOf(top) || className(top));
    const cause = chain[1];
    if (cause !== undefined) fields.cause = scrub(messageOf(cause) || className(cause));
  }
  if (sqlState !== undefined) fields.sqlState = sqlState;
  if (code !== undefined) fields.code = code;
  const stack = framesOf(top);
  if (stack !== undefined) fields.stack = stack;
  return fields;
}
