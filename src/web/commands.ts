import { api, channelPath, userPath } from './api.js';
import { note } from './render.js';
import { currentView, state, type View } from './state.js';
import type { Ban, Channel, Me, ModeFlag, Modes, Motd, Whois } from './types.js';
import { absorb, addEvent, findChannel, joinChannel, loadMembers, openQuery, removeView, sendPrivate } from './views.js';

/** The composer: plain text goes to the open view; IRC's slash commands do the rest. */

export interface CommandHooks {
  quit(reason: string): Promise<void>;
  renamed(me: Me): void;
  awayChanged(me: Me): void;
  showMotd(motd: Motd, always: boolean): void;
}

export const HELP = [
  '/join #channel [key] — join (or create) a channel',
  '/part [#channel] [reason] — leave a channel (or close a conversation)',
  '/topic [text] — show or set the topic',
  '/me text — an action, in a channel or a conversation',
  '/msg nick text — a private message; /query nick — open a conversation',
  '/nick newnick — change your nick',
  '/names, /whois nick — who is here, who someone is',
  '/away [message], /back — set or clear your away message',
  '/motd — the message of the day (admins: /setmotd text)',
  'Operators: /mode [+|-]itmkl [key] [limit], /op nick, /deop nick, /invite nick, /kick nick [reason],',
  '  /ban nick [10m|2h|1d] [reason], /unban nick, /bans',
  'Moderators and admins: /alert text — to everyone',
  '/quit [reason] — leave CanaDuck; //text sends text starting with a slash',
  'Keys: alt+↑/↓ previous/next view, alt+a next unread',
];

function channelOrThrow(): View {
  const view = currentView();
  if (!view || view.kind !== 'channel') throw new Error('That works in a channel: switch to one first.');
  return view;
}

/** `/ban` durations: `90`, `90s`, `10m`, `2h`, `1d`, `1w`. */
export function parseDuration(token: string): number | null {
  const match = /^(\d{1,7})([smhdw]?)$/i.exec(token);
  if (!match) return null;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[(match[2] ?? '').toLowerCase()] ?? 1;
  return Number(match[1]) * unit;
}

const MODE_FLAGS: Record<string, ModeFlag> = { i: 'inviteOnly', t: 'topicLocked', m: 'moderated' };
const MODE_HELP = 'i (invite-only), t (topic locked), m (moderated), k key, l limit, o (operator), b (ban)';

/** `/mode +i-t`: channel flags; `/mode +o nick`, `-o`, `+b`, `-b` as on IRC. */
async function mode(channel: View, args: string[]): Promise<void> {
  const [spec, nick] = args;
  if (!spec) {
    const info = await api<Channel>('GET', channelPath(channel.name));
    const on = Object.entries(MODE_FLAGS).filter(([, flag]) => info.modes[flag]).map(([letter]) => letter);
    const params: string[] = [];
    if (info.modes.hasKey) {
      on.push('k');
      params.push(info.modes.key ?? '(hidden)');
    }
    if (info.modes.limit !== null) {
      on.push('l');
      params.push(String(info.modes.limit));
    }
    note(`Modes of ${info.name}: ${on.length ? [`+${on.join('')}`, ...params].join(' ') : 'none'}`, 'info');
    return;
  }
  const personal = /^([+-])([ob])$/.exec(spec);
  if (personal) {
    if (!nick) throw new Error(`Usage: /mode ${spec} nick`);
    const [, sign, letter] = personal;
    const path = `${channelPath(channel.name)}/${letter === 'o' ? 'operators' : 'bans'}/${encodeURIComponent(nick)}`;
    absorb(channel, await api(sign === '+' ? 'PUT' : 'DELETE', path, letter === 'b' && sign === '+' ? {} : undefined));
    return;
  }
  // Flags, then the parameters of +k and +l in order, as on IRC: `/mode +kl secret 20`, `/mode -k`.
  const change: Partial<Omit<Modes, 'hasKey'>> = {};
  const params = args.slice(1);
  let sign = '+';
  for (const ch of spec) {
    if (ch === '+' || ch === '-') sign = ch;
    else if (MODE_FLAGS[ch]) change[MODE_FLAGS[ch]] = sign === '+';
    else if (ch === 'k') change.key = sign === '+' ? (params.shift() ?? usage('/mode +k key')) : null;
    else if (ch === 'l') change.limit = sign === '+' ? Number(params.shift() ?? usage('/mode +l number')) : null;
    else throw new Error(`Unknown mode ${ch}: ${MODE_HELP}`);
  }
  const result = await api<{ channel: Channel; event: unknown }>('PATCH', channelPath(channel.name), change);
  channel.modes = { ...result.channel.modes };
  absorb(channel, result);
}

function usage(text: string): never {
  throw new Error(`Usage: ${text}`);
}

async function ban(channel: View, args: string[]): Promise<void> {
  const [nick, maybeDuration, ...rest] = args;
  if (!nick) throw new Error('Usage: /ban nick [10m|2h|1d] [reason]');
  const duration = maybeDuration ? parseDuration(maybeDuration) : null;
  const reason = (duration === null ? [maybeDuration, ...rest] : rest).filter(Boolean).join(' ');
  const body: { reason?: string; durationSeconds?: number } = {};
  if (reason) body.reason = reason;
  if (duration !== null) body.durationSeconds = duration;
  absorb(channel, await api('PUT', `${channelPath(channel.name)}/bans/${encodeURIComponent(nick)}`, body));
}

export async function command(line: string, hooks: CommandHooks): Promise<void> {
  const view = currentView();
  if (!line.startsWith('/') || line.startsWith('//')) {
    const text = line.startsWith('//') ? line.slice(1) : line;
    if (!view) throw new Error('Join a channel first: /join #general');
    if (view.kind === 'channel') addEvent(view, await api('POST', `${channelPath(view.name)}/messages`, { text }), false);
    else if (view.kind === 'private') await sendPrivate(view.name, text);
    else throw new Error('Nobody reads this view: switch to a channel or a conversation.');
    return;
  }
  const match = /^\/(\S+)(?:\s+([\s\S]*))?$/.exec(line);
  const name = match?.[1]?.toLowerCase() ?? '';
  const rest = (match?.[2] ?? '').trim();
  const args = rest ? rest.split(/\s+/) : [];
  const [first = ''] = args;
  const tail = rest.slice(first.length).trim();
  switch (name) {
    case 'me': {
      if (!rest) throw new Error('Usage: /me waves');
      if (view?.kind === 'private') {
        await sendPrivate(view.name, rest, true);
        return;
      }
      const channel = channelOrThrow();
      addEvent(channel, await api('POST', `${channelPath(channel.name)}/messages`, { text: rest, action: true }), false);
      return;
    }
    case 'join':
    case 'j':
      if (!first) throw new Error('Usage: /join #channel [key]');
      await joinChannel(first, args[1]);
      return;
    case 'part':
    case 'leave': {
      let target = view;
      let reason = rest;
      if (first.startsWith('#')) {
        target = findChannel(first);
        reason = tail;
        if (!target) throw new Error(`You are not in ${first}`);
      }
      if (target?.kind === 'private') {
        removeView(target.key);
        return;
      }
      if (!target || target.kind !== 'channel') throw new Error('Usage: /part [#channel] [reason]');
      await api('DELETE', `${channelPath(target.name)}/membership`, reason ? { reason } : undefined);
      removeView(target.key);
      return;
    }
    case 'topic': {
      const channel = channelOrThrow();
      if (!rest) {
        note(channel.topic ? `Topic of ${channel.name}: ${channel.topic}` : `${channel.name} has no topic`, 'info');
        return;
      }
      absorb(channel, { event: await api('PUT', `${channelPath(channel.name)}/topic`, { topic: rest }) });
      return;
    }
    case 'msg':
    case 'query': {
      if (!first) throw new Error(`Usage: /${name} nick${name === 'msg' ? ' text' : ''}`);
      if (name === 'msg' && tail) {
        const target = await sendPrivate(first, tail);
        if (target.key !== state.current) note(`→ ${target.name}: ${tail}`, 'info');
        return;
      }
      openQuery(first);
      return;
    }
    case 'nick': {
      if (!first) throw new Error('Usage: /nick newnick');
      const me = await api<Me>('PATCH', '/api/me', { nick: first });
      hooks.renamed(me);
      note(`You are now known as ${me.nick}`, 'info');
      return;
    }
    case 'names': {
      const channel = channelOrThrow();
      await loadMembers(channel);
      const names = [...(channel.members?.values() ?? [])].map((m) => `${m.operator ? '@' : ''}${m.nick}${m.away ? ' (away)' : ''}`);
      note(`In ${channel.name}: ${names.join(' ')}`, 'info');
      return;
    }
    case 'whois': {
      if (!first) throw new Error('Usage: /whois nick');
      const who = await api<Whois>('GET', userPath(first));
      const away = who.away ? `, away: ${who.away.message}` : '';
      note(`${who.nick}: ${who.role}, ${who.online ? 'online' : 'offline'}${away}, idle ${who.idleSeconds}s${who.channels.length ? `, in ${who.channels.join(' ')}` : ''}`, 'info');
      return;
    }
    case 'away': {
      const me = rest ? await api<Me>('PUT', '/api/me/away', { message: rest }) : await api<Me>('DELETE', '/api/me/away');
      hooks.awayChanged(me);
      note(me.away ? `You are away: ${me.away.message}` : 'You are back', 'info');
      return;
    }
    case 'back': {
      hooks.awayChanged(await api<Me>('DELETE', '/api/me/away'));
      note('You are back', 'info');
      return;
    }
    case 'motd':
      hooks.showMotd(await api<Motd>('GET', '/api/motd'), true);
      return;
    case 'setmotd': {
      const motd = await api<Motd>('PUT', '/api/motd', { motd: rest });
      note(motd.motd ? 'Message of the day set' : 'Message of the day cleared', 'info');
      hooks.showMotd(motd, true);
      return;
    }
    case 'alert':
      if (!rest) throw new Error('Usage: /alert text (moderators and admins)');
      await api('POST', '/api/alerts', { text: rest });
      return;
    case 'mode':
      await mode(first.startsWith('#') ? (findChannel(first) ?? channelOrThrow()) : channelOrThrow(), first.startsWith('#') ? args.slice(1) : args);
      return;
    case 'op':
    case 'deop': {
      const channel = channelOrThrow();
      if (!first) throw new Error(`Usage: /${name} nick`);
      absorb(channel, await api(name === 'op' ? 'PUT' : 'DELETE', `${channelPath(channel.name)}/operators/${encodeURIComponent(first)}`));
      return;
    }
    case 'invite': {
      if (!first) throw new Error('Usage: /invite nick [#channel]');
      const channel = args[1] ? findChannel(args[1]) : channelOrThrow();
      if (!channel) throw new Error(`You are not in ${args[1]}`);
      absorb(channel, await api('POST', `${channelPath(channel.name)}/invites`, { nick: first }));
      note(`Invited ${first} to ${channel.name}`, 'info');
      return;
    }
    case 'kick': {
      const channel = channelOrThrow();
      if (!first) throw new Error('Usage: /kick nick [reason]');
      absorb(channel, await api('DELETE', `${channelPath(channel.name)}/members/${encodeURIComponent(first)}`, tail ? { reason: tail } : {}));
      return;
    }
    case 'ban':
      await ban(channelOrThrow(), args);
      return;
    case 'unban': {
      const channel = channelOrThrow();
      if (!first) throw new Error('Usage: /unban nick');
      absorb(channel, await api('DELETE', `${channelPath(channel.name)}/bans/${encodeURIComponent(first)}`));
      return;
    }
    case 'bans': {
      const channel = channelOrThrow();
      const { bans } = await api<{ bans: Ban[] }>('GET', `${channelPath(channel.name)}/bans`);
      if (bans.length === 0) note(`Nobody is banned from ${channel.name}`, 'info');
      for (const b of bans) {
        note(`${b.nick}: by ${b.setBy}${b.reason ? ` (${b.reason})` : ''}${b.expiresAt ? `, until ${new Date(b.expiresAt).toLocaleString()}` : ''}`, 'info');
      }
      return;
    }
    case 'quit':
      await hooks.quit(rest);
      return;
    case 'help':
      for (const text of HELP) note(text, 'info');
      return;
    default:
      throw new Error(`Unknown command /${name}; try /help`);
  }
}
