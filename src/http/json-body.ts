import type { Context, MiddlewareHandler } from 'hono';
import { CanaDuckError } from '../errors.js';
import type { AppEnv } from './env.js';
import { SAFE_METHODS } from './session.js';

export const MAX_BODY_BYTES = 16 * 1024;
const MAX_DEPTH = 16;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

const invalid = (detail: string) => new CanaDuckError('validation_failed', detail);

/**
 * Reads request bodies ourselves, before any validator: at most 16 KiB however the body
 * is framed (a chunked body that never ends is cut off), JSON only, valid UTF-8, and
 * none of the JSON traps: prototype keys, integers beyond 2^53, deep nesting, lone
 * surrogates. The accepted text is handed to Hono's body cache for the validators.
 */
export const jsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (SAFE_METHODS.has(c.req.method)) return next();
  const declared = Number(c.req.header('content-length') ?? NaN);
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const bytes = await readBounded(c);
  if (bytes.length === 0) {
    cacheBodyText(c.req.bodyCache, ''); // no body: optional-body routes see none, others fail validation
    return next();
  }
  const mediaType = (c.req.header('content-type') ?? '').split(';')[0]!.trim();
  if (!JSON_MEDIA_TYPE.test(mediaType)) {
    throw new CanaDuckError('unsupported_media_type', 'send the body as application/json');
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw invalid('the body is not valid UTF-8');
  }
  checkJson(text);
  cacheBodyText(c.req.bodyCache, text);
  return next();
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Hono's body cache holds promises although its type says values (hono/src/request.ts #cachedBody). */
const cacheBodyText = (cache: object, text: string) => {
  (cache as { text?: Promise<string> }).text = Promise.resolve(text);
};

const tooLarge = () => new CanaDuckError('payload_too_large', `the request body is larger than ${MAX_BODY_BYTES / 1024} KiB`);

/**
 * Reads from the Node request itself: going through `c.req.raw.body` would build a web
 * `Request`, an `AbortSignal` and a web stream for every POST, a large share of the CPU
 * a message costs. Past the bound the rest is not read and the connection closes after
 * the answer (the client may still be sending). Without Node bindings (`app.request`
 * in-process), the web body is read with the same bound.
 */
function readBounded(c: Context<AppEnv>): Promise<Uint8Array> {
  const incoming = c.env?.incoming;
  if (!incoming) return readWebBody(c.req.raw.body);
  if (incoming.readableEnded) return Promise.resolve(new Uint8Array());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk);
      cleanup();
      incoming.pause();
      c.env.outgoing.shouldKeepAlive = false;
      reject(tooLarge());
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(invalid(`the body could not be read: ${err.message}`));
    };
    const onAborted = () => onError(new Error('the client went away'));
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('aborted', onAborted);
  });
}

async function readWebBody(body: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  if (!body) return new Uint8Array();
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** Parses to check; throws `validation_failed` naming the first trap found. */
export function checkJson(text: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, (key, value: unknown) => {
      if (FORBIDDEN_KEYS.has(key)) throw invalid(`the key ${JSON.stringify(key)} is not allowed`);
      if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) {
        throw invalid('integers beyond 2^53 - 1 are not accepted');
      }
      if (typeof value === 'string' && !value.isWellFormed()) throw invalid('the body contains a lone surrogate');
      if (!key.isWellFormed()) throw invalid('the body contains a lone surrogate');
      return value;
    });
  } catch (err) {
    if (err instanceof CanaDuckError) throw err;
    throw invalid('the body is not valid JSON');
  }
  // Depth, iteratively: JSON.parse itself copes with deep input, but nothing here needs it.
  const stack: Array<[unknown, number]> = [[parsed, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (depth > MAX_DEPTH) throw invalid(`the body is nested deeper than ${MAX_DEPTH} levels`);
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
}
