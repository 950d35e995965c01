import type { MiddlewareHandler } from 'hono';
import { CanaDuckError } from '../errors.js';
import type { AppEnv } from './env.js';

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
  const raw = c.req.raw;
  if (raw.method === 'GET' || raw.method === 'HEAD' || raw.method === 'OPTIONS' || !raw.body) return next();
  const declared = Number(raw.headers.get('content-length') ?? NaN);
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const bytes = await readBounded(raw.body);
  if (bytes.length === 0) {
    cacheBodyText(c.req.bodyCache, ''); // no body: optional-body routes see none, others fail validation
    return next();
  }
  const mediaType = (raw.headers.get('content-type') ?? '').split(';')[0]!.trim();
  if (!JSON_MEDIA_TYPE.test(mediaType)) {
    throw new CanaDuckError('unsupported_media_type', 'send the body as application/json');
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw invalid('the body is not valid UTF-8');
  }
  checkJson(text);
  cacheBodyText(c.req.bodyCache, text);
  return next();
};

/** Hono's body cache holds promises although its type says values (hono/src/request.ts #cachedBody). */
const cacheBodyText = (cache: object, text: string) => {
  (cache as { text?: Promise<string> }).text = Promise.resolve(text);
};

const tooLarge = () => new CanaDuckError('payload_too_large', `the request body is larger than ${MAX_BODY_BYTES / 1024} KiB`);

async function readBounded(body: ReadableStream<Uint8Array>): Promise<Uint8Array> {
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
