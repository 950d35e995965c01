import { casefold } from '../shared/names.js';
import { button, byId, el } from './dom.js';
import { currentView, isMe, orderedViews, state, type View } from './state.js';
import { mentions, richText } from './text.js';
import type { ChatEvent, Member } from './types.js';

/** Everything drawn on the page, from the state. Text goes in with textContent only. */

const timeOf = (ts: string): string => {
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
};
const str = (value: unknown): string => (typeof value === 'string' ? value : '');
const reasonOf = (text: string): string => (text ? ` (${text})` : '');
const MODE_NAMES: Record<string, string> = { inviteOnly: 'invite-only', topicLocked: 'topic locked', moderated: 'moderated' };

/** What a `mode` event did, in words. */
function describeMode(ev: ChatEvent): string {
  const d = ev.data;
  if (typeof d.role === 'string') return `made you ${d.role === 'user' ? 'a regular user' : `a ${d.role}`}`;
  if ('away' in d) return typeof d.away === 'string' ? `is away: ${d.away}` : 'is back';
  if (typeof d.op === 'string') return d.auto === true ? `made ${d.op} an operator (the last operator left)` : `gave operator status to ${d.op}`;
  if (typeof d.deop === 'string') return `took operator status from ${d.deop}`;
  if (typeof d.ban === 'string') {
    const until = typeof d.expiresAt === 'string' ? ` until ${new Date(d.expiresAt).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })}` : '';
    return `banned ${d.ban}${until}${reasonOf(str(d.reason))}`;
  }
  if (typeof d.unban === 'string') return d.expired === true ? `lifted the expired ban on ${d.unban}` : `lifted the ban on ${d.unban}`;
  const changes = Object.entries(d)
    .filter(([name, on]) => name in MODE_NAMES && typeof on === 'boolean')
    .map(([name, on]) => `${on ? '' : 'not '}${MODE_NAMES[name]}`);
  if ('key' in d) changes.push(typeof d.key === 'string' ? 'a key is needed to join' : 'no key');
  if ('limit' in d) changes.push(typeof d.limit === 'number' ? `at most ${d.limit} members` : 'no member limit');
  return `set mode ${ev.text}${changes.length ? ` (${changes.join(', ')})` : ''}`;
}

/** The line of one event. */
export function renderEvent(ev: ChatEvent, view: View, onJoin: (channel: string) => void): HTMLLIElement {
  const li = el('li', `ev ev-${ev.type}`);
  li.dataset.seq = String(ev.seq);
  li.dataset.log = ev.log;
  li.dataset.type = ev.type;
  const time = el('time', '', timeOf(ev.ts));
  time.dateTime = ev.ts;
  li.append(time);
  const nick = el('span', 'nick', ev.nick);
  const text = (t: string) => el('span', 'text', t);
  const myNick = state.me?.nick ?? '';
  if (isMe(ev.nick)) li.classList.add('mine');
  const system = (t: string) => {
    li.classList.add('system');
    li.append(nick, text(t));
  };
  switch (ev.type) {
    case 'message':
    case 'private':
    case 'action': {
      if (ev.type === 'private' && ev.data.action === true) li.classList.add('ev-action');
      const body = el('span', 'text');
      body.append(richText(ev.text, isMe(ev.nick) ? '' : myNick));
      if (!isMe(ev.nick) && mentions(ev.text, myNick)) li.classList.add('mention');
      li.append(nick, body);
      break;
    }
    case 'join':
      system(`joined ${view.kind === 'channel' ? view.name : ev.log}`);
      break;
    case 'part':
      system(`left${reasonOf(ev.text)}`);
      break;
    case 'quit':
      system(`quit${reasonOf(ev.text)}`);
      break;
    case 'kick':
      system(`${ev.data.ban === true ? 'kicked and banned' : 'kicked'} ${str(ev.data.target)}${reasonOf(ev.text)}`);
      break;
    case 'nick':
      system(`is now known as ${str(ev.data.newNick)}`);
      break;
    case 'topic':
      system(ev.text ? `set the topic: ${ev.text}` : 'cleared the topic');
      break;
    case 'mode':
      system(describeMode(ev));
      break;
    case 'invite': {
      const channel = str(ev.data.channel);
      if (channel) {
        system(`invited you to ${channel}`);
        li.append(button(`Join ${channel}`, () => onJoin(channel), 'link join-invite'));
      } else {
        system(`invited ${str(ev.data.target)}`);
      }
      break;
    }
    case 'alert': {
      li.append(el('span', 'badge', 'ALERT'), nick);
      const body = el('span', 'text');
      body.append(richText(ev.text, ''));
      li.append(body);
      break;
    }
  }
  return li;
}

const seqOf = (node: Element | null): number | undefined => {
  const seq = (node as HTMLElement | null)?.dataset.seq;
  return seq === undefined ? undefined : Number(seq);
};

/** The seq of the nearest event line before (or after) `node`, skipping local lines. */
function nearestSeq(node: Element, backwards: boolean): number | undefined {
  for (let at = backwards ? node.previousElementSibling : node.nextElementSibling; at; at = backwards ? at.previousElementSibling : at.nextElementSibling) {
    const seq = seqOf(at);
    if (seq !== undefined) return seq;
  }
  return undefined;
}

/**
 * Inserts a line in seq order (nearly always at the end); a server view is in arrival order.
 * A local line (a note, the unread divider) keeps its place between the events around it: a
 * live event goes after a note at the end, an older page goes above the divider.
 */
export function insertLine(view: View, li: HTMLLIElement, ev: ChatEvent): void {
  let after = view.list.lastElementChild;
  if (view.kind !== 'server') {
    while (after) {
      const seq = seqOf(after);
      const later = seq !== undefined ? seq > ev.seq : (nearestSeq(after, true) ?? nearestSeq(after, false) ?? -Infinity) > ev.seq;
      if (!later) break;
      after = after.previousElementSibling;
    }
  }
  if (after) after.after(li);
  else view.list.prepend(li);
}

export function atBottom(): boolean {
  const s = byId('scroller');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
}

export function scrollToBottom(): void {
  const s = byId('scroller');
  s.scrollTop = s.scrollHeight;
}

/** A line of no log: an error, a hint or a command's answer, in the current view. */
export function note(message: string, kind: 'error' | 'info' = 'error'): void {
  const view = currentView();
  const li = el('li', `local ${kind}`, message);
  li.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  if (!view) {
    // No view open (e.g. just kicked from the only one): under the welcome hint.
    const slot = byId('log-slot');
    let scratch = slot.querySelector('ol.scratch');
    if (!scratch) {
      scratch = el('ol', 'log scratch');
      slot.append(scratch);
    }
    scratch.append(li);
    return;
  }
  const stick = atBottom();
  view.list.append(li);
  if (stick) scrollToBottom();
}

export function renderSidebar(show: (key: string) => void): void {
  const channels: HTMLLIElement[] = [];
  const privates: HTMLLIElement[] = [];
  let unread = 0;
  for (const view of orderedViews()) {
    const li = el('li');
    const item = el('button', 'view-item');
    item.type = 'button';
    item.dataset.view = view.key;
    item.title = view.name;
    item.append(el('span', 'label', view.kind === 'server' ? 'Server notices' : view.name));
    const counted = view.key !== state.current;
    if (counted && view.mentions > 0) item.append(el('span', 'mentions', String(view.mentions)));
    if (counted && view.unread > 0) item.append(el('span', 'unread', String(view.unread)));
    if (counted && view.unread > 0) item.classList.add('has-unread');
    item.setAttribute('aria-current', String(view.key === state.current));
    item.addEventListener('click', () => show(view.key));
    li.append(item);
    (view.kind === 'private' ? privates : channels).push(li);
    if (counted) unread += view.unread;
  }
  byId('channel-list').replaceChildren(...channels);
  byId('private-list').replaceChildren(...privates);
  document.title = unread > 0 ? `(${unread}) CanaDuck` : 'CanaDuck';
}

export function renderHeader(): void {
  const view = currentView();
  byId('view-title').textContent = view ? (view.kind === 'server' ? 'Server notices' : view.name) : 'Welcome';
  byId('view-title').title = view?.name ?? '';
  const topic = !view
    ? ''
    : view.kind === 'channel'
      ? view.topic || 'No topic'
      : view.kind === 'private'
        ? `Private conversation with ${view.name}`
        : 'Alerts, invitations and role changes';
  byId('view-topic').textContent = topic;
  const modes = byId('view-modes');
  const flags = view?.kind === 'channel' && view.modes ? view.modes : null;
  modes.replaceChildren(
    ...(flags
      ? [
          ...Object.entries(flags)
            .filter(([name, on]) => on === true && name in MODE_NAMES)
            .map(([name]) => el('span', 'chip', MODE_NAMES[name])),
          ...(flags.hasKey ? [el('span', 'chip', flags.key ? `key: ${flags.key}` : 'key needed')] : []),
          ...(flags.limit !== null ? [el('span', 'chip', `at most ${flags.limit} members`)] : []),
        ]
      : []),
  );
  byId('older').hidden = !view || !view.hasOlder;
  byId('toggle-members').hidden = view?.kind !== 'channel';
}

const IDLE_SECONDS = 600;

function idleText(seconds: number): string {
  if (seconds < 3600) return `idle ${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `idle ${Math.floor(seconds / 3600)}h`;
  return `idle ${Math.floor(seconds / 86400)}d`;
}

export function renderMembers(onPick: (member: Member, item: HTMLLIElement) => void): void {
  const view = currentView();
  const list = byId('member-list');
  if (!view || view.kind !== 'channel' || !view.members) {
    list.replaceChildren();
    byId('member-count').textContent = '';
    return;
  }
  const members = [...view.members.values()].sort((a, b) => Number(b.operator) - Number(a.operator) || casefold(a.nick).localeCompare(casefold(b.nick)));
  list.replaceChildren(
    ...members.map((m) => {
      const idle = state.idle.get(casefold(m.nick)) ?? 0;
      const status = !m.online ? 'offline' : m.away ? 'away' : idle >= IDLE_SECONDS ? idleText(idle) : '';
      const li = el('li', ['member', m.operator ? 'op' : '', m.away ? 'away' : '', m.online ? '' : 'offline', status.startsWith('idle') ? 'idle' : ''].join(' ').trim());
      li.dataset.nick = m.nick;
      const item = el('button', 'member-button');
      item.type = 'button';
      item.append(el('span', 'prefix', m.operator ? '@' : ''), el('span', 'label', m.nick));
      if (status) item.append(el('span', 'status', status));
      item.title = [m.nick, m.operator ? 'operator' : '', m.away ? `away: ${m.away.message}` : status].filter(Boolean).join(' · ');
      item.addEventListener('click', () => onPick(m, li));
      li.append(item);
      return li;
    }),
  );
  byId('member-count').textContent = String(members.length);
}

/** An alert, at the top of the page until dismissed. */
export function showAlert(ev: ChatEvent): void {
  const box = el('div', 'alert-banner');
  box.setAttribute('role', 'alert');
  const body = el('p', 'alert-text');
  body.append(el('strong', '', `Alert from ${ev.nick}: `), richText(ev.text, ''));
  box.append(body, button('Dismiss', () => box.remove(), 'dismiss'));
  byId('alerts').append(box);
}
