import { api, errorText, onSessionEnded } from './api.js';
import { command } from './commands.js';
import { byId, el } from './dom.js';
import { wireKeys } from './keys.js';
import { memberMenu } from './members.js';
import { atBottom, note } from './render.js';
import { claim, enter, quit, showMotd, signedOut, updateMe } from './session.js';
import { openSettings, wireSettings } from './settings.js';
import { currentView, state } from './state.js';
import type { Channel, Me } from './types.js';
import { joinChannel, jumpToUnread, loadMembers, loadOlder, markRead, onIdentityEvents, onMemberPicked, openQuery, updateJumpButton } from './views.js';

/**
 * CanaDuck's web client. Modules by concern: api (requests), stream (the one connection:
 * EventSource or long-poll), state (views keyed by log), views (filling and showing them),
 * render (the DOM), commands (the composer), session, settings, keys, notify.
 */

const hooks = {
  quit,
  renamed: updateMe,
  awayChanged: updateMe,
  showMotd,
};

async function run(line: string): Promise<void> {
  try {
    await command(line, hooks);
  } catch (err) {
    note(errorText(err));
    throw err;
  }
}

async function loadBrowse(): Promise<void> {
  try {
    const { channels } = await api<{ channels: Channel[] }>('GET', '/api/channels');
    byId('browse-list').replaceChildren(
      ...channels.map((ch) => {
        const li = el('li');
        const join = el('button', 'link', ch.name);
        join.type = 'button';
        join.title = `Join ${ch.name}`;
        join.addEventListener('click', () => void joinChannel(ch.name).catch((err) => note(errorText(err))));
        li.append(join, el('span', 'count', String(ch.memberCount)), el('span', 'btopic', ch.topic));
        return li;
      }),
    );
  } catch {
    // shown again on the next refresh
  }
}

function wire(): void {
  onSessionEnded(() => {
    if (state.me) signedOut('Your session has ended. Pick a nick again.');
  });
  onIdentityEvents(
    (nick) => {
      if (state.me) updateMe({ ...state.me, nick });
    },
    () => void api<Me>('GET', '/api/me').then(updateMe, () => {}),
  );
  onMemberPicked(memberMenu((line) => void run(line).catch(() => {})));
  byId('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const nick = byId<HTMLInputElement>('login-nick').value.trim();
    const password = byId<HTMLInputElement>('login-password').value;
    if (nick) void claim(nick, password);
  });
  byId('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = byId<HTMLInputElement>('input');
    const line = input.value;
    if (!line.trim()) return;
    input.value = '';
    run(line).catch(() => {
      if (!input.value) input.value = line; // give the line back to fix it
    });
  });
  byId('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = byId<HTMLInputElement>('join-name');
    const name = input.value.trim();
    if (!name) return;
    input.value = '';
    joinChannel(name).catch((err) => note(errorText(err)));
  });
  byId('query-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = byId<HTMLInputElement>('query-nick');
    const nick = input.value.trim();
    if (!nick) return;
    input.value = '';
    openQuery(nick);
  });
  byId('older').addEventListener('click', () => void loadOlder());
  byId('jump-unread').addEventListener('click', jumpToUnread);
  const scroller = byId('scroller');
  scroller.addEventListener('scroll', () => {
    if (scroller.scrollTop < 20) void loadOlder();
    const view = currentView();
    if (view && atBottom()) markRead(view);
    updateJumpButton();
  });
  document.addEventListener('visibilitychange', () => {
    const view = currentView();
    if (!document.hidden && view && atBottom()) markRead(view);
  });
  byId('browse').addEventListener('toggle', () => {
    if (byId<HTMLDetailsElement>('browse').open) void loadBrowse();
  });
  byId('browse-refresh').addEventListener('click', () => void loadBrowse());
  byId('quit').addEventListener('click', () => void quit(''));
  byId('me').addEventListener('click', openSettings);
  byId('motd-close').addEventListener('click', () => (byId('motd').hidden = true));
  byId('toggle-sidebar').addEventListener('click', () => document.body.classList.toggle('sidebar-open'));
  byId('toggle-members').addEventListener('click', () => {
    document.body.classList.toggle('members-open');
    const view = currentView();
    if (view?.kind === 'channel' && document.body.classList.contains('members-open')) void loadMembers(view);
  });
  byId('scrim').addEventListener('click', () => document.body.classList.remove('sidebar-open', 'members-open'));
  wireSettings();
  wireKeys();
  // Idle times change without events: the open channel's member list is read again now and then.
  window.setInterval(() => {
    const view = currentView();
    if (view?.kind === 'channel' && !document.hidden) void loadMembers(view);
  }, 60_000);
}

async function start(): Promise<void> {
  wire();
  // Reuse the session the HttpOnly cookie holds, if it is still valid.
  try {
    const res = await fetch('/api/me', { credentials: 'same-origin', headers: { accept: 'application/json' } });
    if (res.ok) {
      await enter((await res.json()) as Me);
      return;
    }
  } catch {
    // offline: show the form
  }
  signedOut();
}

void start();
