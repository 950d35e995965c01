import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WAIT_MS } from './irc.js';

/**
 * Debian's weechat-headless (3.8) as a real IRC client in tests: started with its own home
 * directory, driven through its FIFO (`<buffer> *<text or /command>` per line), read through
 * the logger's files, which it flushes at once (`logger.file.flush_delay 0`). Processes are
 * tracked and stopped by PID (`stopAllWeechats`), never by name.
 */

export const WEECHAT = '/usr/bin/weechat-headless';
export const haveWeechat = existsSync(WEECHAT);

/** The server's name inside weechat: buffers are `irc.cd.<channel>`. */
const SERVER = 'cd';
const running = new Set<Weechat>();

/** One line of a weechat log file: `time TAB prefix TAB message`. */
export interface WeechatLogLine {
  prefix: string;
  message: string;
}

export class Weechat {
  readonly exited: Promise<void>;
  alive = true;

  private constructor(
    readonly child: ChildProcess,
    readonly dir: string,
    readonly nick: string,
  ) {
    this.exited = new Promise((resolve) => {
      const gone = () => {
        this.alive = false;
        running.delete(this);
        resolve();
      };
      child.once('exit', gone);
      child.once('error', gone); // could not be started
    });
  }

  /** Starts weechat-headless connected to 127.0.0.1:`port` as `nick`, joining `channels`. */
  static async start({ port, nick, channels }: { port: number; nick: string; channels: string[] }): Promise<Weechat> {
    const dir = mkdtempSync(join(tmpdir(), 'canaduck-weechat-'));
    const commands = [
      // Logs are flushed every 120 s by default: at once, so that tests can read them.
      '/set logger.file.flush_delay 0',
      // 3.8 spaces a user's lines 2 s apart by default: none, so that a burst keeps its order quickly.
      `/server add ${SERVER} 127.0.0.1/${port} -notls -nicks=${nick} -username=${nick.slice(0, 9)} -realname=weechat -autojoin=${channels.join(',')} -anti_flood_prio_high=0 -anti_flood_prio_low=0`,
      `/connect ${SERVER}`,
    ];
    const child = spawn(WEECHAT, ['-d', dir, '-r', commands.join(';')], {
      stdio: ['ignore', 'ignore', 'ignore'],
      env: { PATH: process.env.PATH ?? '', HOME: dir, TERM: 'dumb', LANG: 'C.UTF-8' },
    });
    const weechat = new Weechat(child, dir, nick);
    running.add(weechat);
    const deadline = Date.now() + WAIT_MS;
    while (!existsSync(weechat.fifo)) {
      if (!weechat.alive || Date.now() > deadline) {
        await weechat.stop();
        throw new Error(`weechat-headless did not open its FIFO ${weechat.fifo} within ${WAIT_MS} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return weechat;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get fifo(): string {
    return join(this.dir, `weechat_fifo_${this.pid}`);
  }

  /** Writes `*text` to a buffer (`irc.cd.#chan`, `irc.server.cd`): text is said, `/cmd` is run. */
  input(buffer: string, text: string): void {
    // Non-blocking: with no reader (weechat gone) this fails at once instead of hanging.
    const fd = openSync(this.fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    try {
      writeSync(fd, `${buffer} *${text}\n`);
    } finally {
      closeSync(fd);
    }
  }

  /** Says `text` (or runs `/command`) in a channel's buffer. */
  say(channel: string, text: string): void {
    this.input(`irc.${SERVER}.${channel}`, text);
  }

  /** Runs `/command` in the server buffer. */
  command(text: string): void {
    this.input(`irc.server.${SERVER}`, text);
  }

  logPath(buffer: string): string {
    return join(this.dir, 'logs', `irc.${SERVER}.${buffer.toLowerCase()}.weechatlog`);
  }

  /** The lines of a channel's log (or of the server buffer, `server.cd`). */
  log(buffer: string): WeechatLogLine[] {
    const path = this.logPath(buffer);
    if (!existsSync(path)) return [];
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [, prefix = '', ...message] = line.split('\t');
        return { prefix: prefix.trim(), message: message.join('\t') };
      });
  }

  /** Waits for a log line of `buffer` matching `match`. */
  async waitForLog(buffer: string, match: (line: WeechatLogLine) => boolean, what: string, timeoutMs = WAIT_MS): Promise<WeechatLogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.log(buffer).find(match);
      if (found) return found;
      if (!this.alive || Date.now() > deadline) {
        const tail = this.log(buffer).slice(-10).map((l) => `${l.prefix}\t${l.message}`);
        const server = this.log(`server.${SERVER}`).slice(-8).map((l) => `${l.prefix}\t${l.message}`);
        throw new Error(`weechat ${this.nick} waiting for ${what} in ${buffer}: ${this.alive ? `nothing within ${timeoutMs} ms` : 'weechat exited'}; log: ${JSON.stringify(tail, null, 1)}; server buffer: ${JSON.stringify(server, null, 1)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** `/quit` through the FIFO, then SIGKILL by PID if it has not exited within 5 s; removes its home. */
  async stop(reason = 'bye'): Promise<void> {
    if (this.alive) {
      try {
        this.input('core.weechat', `/quit ${reason}`);
      } catch {
        // No reader on the FIFO: weechat is going away already.
      }
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Stops every weechat a test started (by PID); for `afterAll`. */
export async function stopAllWeechats(): Promise<void> {
  await Promise.all([...running].map((weechat) => weechat.stop()));
}
