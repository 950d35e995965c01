import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WAIT_MS } from './irc.js';

/**
 * Debian's irssi (1.4) as a real IRC client in tests: run in a detached tmux session on a tmux
 * server of its own (`-L <unique name>`, its socket inside irssi's temporary home), started with
 * the README's command line (`irssi -c 127.0.0.1 -p PORT -n NICK`), typed into with
 * `tmux send-keys`, read through its autolog files (one per channel, flushed at once, seconds and
 * the server's time per line), its raw log and `tmux capture-pane`. Stopped by `/quit`, then its
 * own tmux server is killed and irssi's PID, if still there, gets SIGKILL: nothing else is touched.
 */

export const IRSSI = '/usr/bin/irssi';
export const TMUX = '/usr/bin/tmux';
export const haveIrssi = existsSync(IRSSI) && existsSync(TMUX);

const execTmux = promisify(execFile);
/** The tmux session (one per tmux server, so the name need not be unique). */
const SESSION = 'irssi';
const running = new Set<Irssi>();

/** One line of an irssi log file: `HH:MM:SS` (UTC, the server's time when the line had one) and the rest. */
export interface IrssiLogLine {
  time: string;
  text: string;
}

/** A chat line as irssi shows it: `<@nick> text` (mode `@`, or a space for none). */
export function chatLine(line: IrssiLogLine): { nick: string; message: string } | undefined {
  const match = /^<[@+ ]?([^>\s]+)> (.*)$/.exec(line.text);
  return match ? { nick: match[1]!, message: match[2]! } : undefined;
}

/** An action as irssi shows it: ` * nick text`. */
export function actionLine(line: IrssiLogLine): { nick: string; message: string } | undefined {
  const match = /^ \* (\S+) (.*)$/.exec(line.text);
  return match ? { nick: match[1]!, message: match[2]! } : undefined;
}

/**
 * irssi's configuration: no networks, servers or channels of its own (nothing connects but the
 * command line), no scripts (the home is empty), no settings saved back; a log per channel with
 * seconds and the server's time (so replayed lines carry the time they were said); no client-side
 * flood queue (irssi spaces commands 2.2 s apart by default, which only slows the test).
 */
function config(dir: string, nick: string): string {
  return `servers = ( );
chatnets = { };
channels = ( );
settings = {
  core = {
    real_name = "irssi in a test";
    user_name = "${nick.slice(0, 9)}";
    nick = "${nick}";
    settings_autosave = "no";
    log_timestamp = "%H:%M:%S ";
    rawlog_lines = "2000";
  };
  "irc/core" = { cmd_queue_speed = "0"; cmds_max_at_once = "1000"; };
  "fe-text" = { show_server_time = "yes"; };
  "fe-common/irc" = { group_multi_mode = "no"; };
  "fe-common/core" = {
    autolog = "yes";
    autolog_path = "${join(dir, 'logs')}/$0.log";
    autolog_level = "all";
    log_server_time = "yes";
  };
};
`;
}

export class Irssi {
  alive = true;
  private pid: number | undefined;
  /** Keys typed so far: each `type` waits for the ones before it. */
  private typing: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly socket: string,
    readonly nick: string,
  ) {}

  /** Starts irssi on 127.0.0.1:`port` as `nick` and waits until it is registered. */
  static async start({ port, nick }: { port: number; nick: string }): Promise<Irssi> {
    const dir = mkdtempSync(join(tmpdir(), 'canaduck-irssi-'));
    writeFileSync(join(dir, 'config'), config(dir, nick));
    const irssi = new Irssi(dir, `canaduck-irssi-${process.pid}-${randomBytes(4).toString('hex')}`, nick);
    running.add(irssi);
    try {
      // Several words: tmux runs irssi itself, no shell in between (so no quoting).
      await irssi.tmux('-f', '/dev/null', 'new-session', '-d', '-s', SESSION, '-x', '200', '-y', '50', IRSSI, `--home=${dir}`, '-c', '127.0.0.1', '-p', String(port), '-n', nick);
      irssi.pid = Number((await irssi.tmux('display-message', '-p', '-t', SESSION, '#{pane_pid}')).trim());
      // Starting a program on a loaded machine can take a while: twice the usual wait.
      const welcome = await irssi.waitForScreen(/Welcome to the|Unknown settings|Connection lost|ERROR|Closing Link/, 'the welcome', 2 * WAIT_MS);
      if (!welcome.includes('Welcome to the') || welcome.includes('Unknown settings')) throw new Error(`irssi ${nick} did not register: ${welcome}`);
      // Writes the raw lines so far (from the first CAP LS) and every one after.
      await irssi.type(`/rawlog open ${irssi.rawlogPath}`);
      await irssi.waitForRaw((line) => line.startsWith('<< CAP LS'), 'the raw log');
      return irssi;
    } catch (err) {
      await irssi.stop();
      throw err;
    }
  }

  get rawlogPath(): string {
    return join(this.dir, 'raw.log');
  }

  /** tmux on this irssi's own server; its socket lives in irssi's home, not in /tmp/tmux-UID. */
  private async tmux(...args: string[]): Promise<string> {
    const env = { PATH: process.env.PATH ?? '', HOME: this.dir, TMUX_TMPDIR: this.dir, TERM: 'xterm-256color', LANG: 'C.UTF-8', TZ: 'UTC' };
    const { stdout } = await execTmux(TMUX, ['-L', this.socket, ...args], { env, timeout: 10_000 });
    return stdout;
  }

  /**
   * Types `text` into irssi's current window and presses Enter: text is said in the window's
   * channel, `/command` is run. Calls are queued, so keys arrive in the order they were typed.
   */
  type(text: string): Promise<void> {
    // -l: the text as it is (no key names such as "Enter" inside it).
    const typed = this.typing.then(async () => {
      await this.tmux('send-keys', '-t', SESSION, '-l', '--', text);
      await this.tmux('send-keys', '-t', SESSION, 'Enter');
    });
    this.typing = typed.catch(() => {});
    return typed;
  }

  /** Goes to `channel`'s window and says `text` there (or runs `/command` there). */
  async say(channel: string, text: string): Promise<void> {
    await this.type(`/window goto ${channel}`);
    await this.type(text);
  }

  /** What irssi shows now (its current window). */
  async screen(): Promise<string> {
    return this.tmux('capture-pane', '-p', '-t', SESSION);
  }

  /** Waits until the screen matches `pattern`; returns the screen. */
  async waitForScreen(pattern: RegExp, what: string, timeoutMs = WAIT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const screen = await this.screen().catch((err: Error) => `(no screen: ${err.message})`);
      if (pattern.test(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`irssi ${this.nick} waiting for ${what} on the screen: nothing within ${timeoutMs} ms; screen:\n${screen}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  logPath(channel: string): string {
    // irssi names the log after the channel in lower case.
    return join(this.dir, 'logs', `${channel.toLowerCase()}.log`);
  }

  /** The timestamped lines of a channel's log, across its joins (`--- Log opened` lines left out). */
  log(channel: string): IrssiLogLine[] {
    const path = this.logPath(channel);
    if (!existsSync(path)) return [];
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((line) => /^\d\d:\d\d:\d\d /.test(line))
      .map((line) => ({ time: line.slice(0, 8), text: line.slice(9) }));
  }

  /** The raw lines irssi sent (`<< `) and received (`>> `), from the first one. */
  raw(): string[] {
    return existsSync(this.rawlogPath) ? readFileSync(this.rawlogPath, 'utf8').split('\n').filter(Boolean) : [];
  }

  /** Waits for a log line of `channel` matching `match`. */
  async waitForLog(channel: string, match: (line: IrssiLogLine) => boolean, what: string, timeoutMs = WAIT_MS): Promise<IrssiLogLine> {
    return this.poll(() => this.log(channel).find(match), what, timeoutMs, () => `log: ${JSON.stringify(this.log(channel).slice(-12), null, 1)}`);
  }

  /** Waits for a raw line matching `match`. */
  async waitForRaw(match: (line: string) => boolean, what: string, timeoutMs = WAIT_MS): Promise<string> {
    return this.poll(() => this.raw().find(match), what, timeoutMs, () => '');
  }

  private async poll<T>(find: () => T | undefined, what: string, timeoutMs: number, context: () => string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (Date.now() > deadline) {
        const raw = this.raw().slice(-12);
        throw new Error(`irssi ${this.nick} waiting for ${what}: nothing within ${timeoutMs} ms; ${context()}; raw: ${JSON.stringify(raw, null, 1)}; screen:\n${await this.screen().catch(() => '(gone)')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** `/quit`, waits up to 5 s for irssi to end its session, then kills its tmux server (and irssi by PID); removes its home. */
  async stop(reason = 'bye'): Promise<void> {
    if (this.alive) {
      this.alive = false;
      running.delete(this);
      const sessionGone = async () => this.tmux('has-session', '-t', SESSION).then(() => false, () => true);
      if (!(await sessionGone())) {
        await this.type(`/quit ${reason}`).catch(() => {});
        const deadline = Date.now() + 5_000;
        while (!(await sessionGone()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await this.tmux('kill-server').catch(() => {}); // already gone with its last session
      // Only if that PID is still this irssi (it has usually exited, and a PID can be reused).
      if (this.pid && this.pid > 0) {
        try {
          if (readFileSync(`/proc/${this.pid}/cmdline`, 'utf8').includes(`--home=${this.dir}`)) process.kill(this.pid, 'SIGKILL');
        } catch {
          // Gone already: the usual case.
        }
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Stops every irssi a test started; for `afterAll`. */
export async function stopAllIrssis(): Promise<void> {
  await Promise.all([...running].map((irssi) => irssi.stop()));
}
