import type { Context, Hono, MiddlewareHandler } from 'hono';
import { getCookie, setCookie, deleteCookie } from 'hono/cookie';
import { CanaDuckError } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { clientAddress } from './client-address.js';
import type { AppEnv } from './env.js';

export const SESSION_COOKIE = 'canaduck_session';
/** Methods that change nothing: no CSRF check, no flood-control token. */
export const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const BEARER = /^Bearer\s+(\S+)$/i;

/** A route whose action re-checks the session at commit, and so may start from a remembered one. */
export interface RememberedSessionRoute {
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Hono path syntax (`/api/channels/:name/messages`). */
  path: string;
}

/**
 * Lets each route declared here authenticate from what this replica remembers of the session
 * (see `Identity.authenticate`): registered before `identify`, it marks the request.
 */
export function acceptRememberedSessions(app: Hono<AppEnv>, routes: readonly RememberedSessionRoute[]): void {
  for (const { method, path } of routes) {
    app.on(method, path, async (c, next) => {
      c.set('acceptsRememberedSession', true);
      await next();
    });
  }
}

const unauthenticated = (detail: string) => new CanaDuckError('unauthenticated', detail);

/**
 * Finds the caller's session from `Authorization: Bearer` or the session cookie. A bearer
 * header that does not check out is refused outright; the cookie is only a fallback.
 * Cookie-authenticated unsafe requests from a foreign origin are refused (CSRF).
 */
export const identify: MiddlewareHandler<AppEnv> = async (c, next) => {
  const { identity, config } = c.get('services');
  const header = c.req.header('authorization');
  const remembered = c.get('acceptsRememberedSession') === true;
  let principal: Principal | undefined;
  if (header !== undefined) {
    const token = BEARER.exec(header.trim())?.[1];
    if (!token) throw unauthenticated('use the header Authorization: Bearer <token>');
    principal = await identity.authenticate(token, 'bearer', { remembered });
    if (!principal) throw unauthenticated('the token is unknown or its session has expired');
  } else {
    const cookie = getCookie(c, SESSION_COOKIE);
    if (cookie) principal = await identity.authenticate(cookie, 'cookie', { remembered });
  }
  if (principal?.via === 'cookie' && !SAFE_METHODS.has(c.req.method) && isCrossOrigin(c, config.allowedOrigins, config.trustProxy)) {
    throw new CanaDuckError('forbidden', 'cookie-authenticated requests from another origin are refused; use a bearer token');
  }
  if (principal) principal.address = clientAddress(c);
  c.set('principal', principal);
  await next();
};

export function requirePrincipal(c: Context<AppEnv>): Principal {
  const principal = c.get('principal');
  if (!principal) throw unauthenticated('claim a nick first (POST /api/sessions), then send its token');
  return principal;
}

function ownOrigin(c: Context<AppEnv>, trustProxy: boolean): string {
  const forwarded = trustProxy ? c.req.header('x-forwarded-proto')?.split(',')[0]?.trim() : undefined;
  const protocol = forwarded ? `${forwarded}:` : new URL(c.req.url).protocol;
  return `${protocol}//${c.req.header('host') ?? ''}`;
}

function isCrossOrigin(c: Context<AppEnv>, allowed: string[], trustProxy: boolean): boolean {
  const origin = c.req.header('origin');
  if (origin === undefined) return c.req.header('sec-fetch-site') === 'cross-site';
  return origin !== ownOrigin(c, trustProxy) && !allowed.includes(origin);
}

export function isHttps(c: Context<AppEnv>, trustProxy: boolean): boolean {
  return ownOrigin(c, trustProxy).startsWith('https:');
}

export function setSessionCookie(c: Context<AppEnv>, token: string): void {
  const { config } = c.get('services');
  setCookie(c, SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: 'Lax',
    secure: isHttps(c, config.trustProxy),
    path: '/',
    maxAge: Math.floor(config.sessionTtlMs / 1000),
  });
}

export const clearSessionCookie = (c: Context<AppEnv>): void => {
  deleteCookie(c, SESSION_COOKIE, { path: '/' });
};
