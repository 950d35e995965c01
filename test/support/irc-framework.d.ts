/**
 * The part of irc-framework 4.14 (test-only dependency, no types of its own) the IRC tests
 * use. See node_modules/irc-framework/docs/ and src/client.js.
 */
declare module 'irc-framework' {
  /** A parsed line: `command` upper-cased, `nick`/`ident`/`hostname` split from `prefix`. */
  export interface IrcLine {
    tags: Record<string, string>;
    prefix: string;
    nick: string;
    ident: string;
    hostname: string;
    command: string;
    params: string[];
  }

  export interface ClientOptions {
    host?: string;
    port?: number;
    nick?: string;
    username?: string;
    gecos?: string;
    /** Sent as PASS (and used for SASL when no account is given). */
    password?: string;
    /** SASL PLAIN credentials. */
    account?: { account: string; password: string };
    auto_reconnect?: boolean;
    ping_interval?: number;
    ping_timeout?: number;
    enable_echomessage?: boolean;
    message_max_length?: number;
    sasl_disconnect_on_fail?: boolean;
    version?: string | null;
  }

  export class Client {
    constructor(options?: ClientOptions);
    connect(options?: ClientOptions): void;
    on(event: string, listener: (...args: any[]) => void): this;
    once(event: string, listener: (...args: any[]) => void): this;
    off(event: string, listener: (...args: any[]) => void): this;
    requestCap(cap: string | string[]): void;
    raw(...args: string[]): void;
    say(target: string, message: string): void;
    notice(target: string, message: string): void;
    action(target: string, message: string): void;
    join(channel: string, key?: string): void;
    part(channel: string, message?: string): void;
    setTopic(channel: string, topic: string): void;
    mode(channel: string, mode: string, extra?: string | string[]): void;
    invite(channel: string, nick: string): void;
    changeNick(nick: string): void;
    quit(message?: string): void;
    readonly connected: boolean;
    user: { nick: string; username: string; away: boolean };
    network: {
      name: string;
      options: Record<string, unknown>;
      supports(feature: string): unknown;
      cap: { enabled: string[]; isEnabled(cap: string): boolean };
    };
    connection: { end(data?: string, hadError?: boolean): void };
  }

  export function ircLineParser(line: string): IrcLine;

  const irc: { Client: typeof Client; ircLineParser: typeof ircLineParser };
  export default irc;
}
