import { createHash, randomBytes } from 'node:crypto';

/** 256 random bits, URL-safe. */
export const newToken = (): string => randomBytes(32).toString('base64url');

/** Tokens are stored only as this hash. */
export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** Shape check before any lookup: 43 base64url characters. */
export const looksLikeToken = (token: string): boolean => /^[A-Za-z0-9_-]{43}$/.test(token);
