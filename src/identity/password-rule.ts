/** What a password must be: long enough to resist guessing, short enough to hash cheaply. */
export const MIN_PASSWORD_CHARS = 8;
export const MAX_PASSWORD_CHARS = 256;
export const PASSWORD_RULE = `${MIN_PASSWORD_CHARS}–${MAX_PASSWORD_CHARS} characters`;

export const isValidPassword = (password: string): boolean =>
  password.length >= MIN_PASSWORD_CHARS && password.length <= MAX_PASSWORD_CHARS && password.isWellFormed();
