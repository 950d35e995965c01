import { api, errorText } from './api.js';
import { byId } from './dom.js';
import { notificationsOn, notificationsSupported, setNotifications } from './notify.js';
import { forcedPoll, renderMe, setTransportSetting, updateMe } from './session.js';
import { state } from './state.js';
import type { Me } from './types.js';

/** The account and settings dialog: register, change the password, away, notifications, transport. */

const dialog = () => byId<HTMLDialogElement>('settings');
const input = (id: string) => byId<HTMLInputElement>(id);

function say(id: string, message: string, ok = false): void {
  const node = byId(id);
  node.textContent = message;
  node.classList.toggle('ok', ok);
}

export function renderSettings(): void {
  const me = state.me;
  if (!me) return;
  byId('settings-nick').textContent = me.nick;
  byId('settings-role').textContent = `${me.role}${me.registered ? ', registered' : ', not registered'}`;
  byId('register-form').hidden = me.registered;
  byId('password-form').hidden = !me.registered;
  input('away-message').value = me.away?.message ?? '';
  byId('away-clear').hidden = !me.away;
  input('notify-toggle').checked = notificationsOn();
  input('notify-toggle').disabled = !notificationsSupported();
  input('transport-poll').checked = forcedPoll();
}

export function openSettings(): void {
  renderSettings();
  for (const id of ['register-status', 'password-status', 'away-status', 'notify-status']) say(id, '');
  dialog().showModal();
}

async function submit(form: string, status: string, act: () => Promise<string>): Promise<void> {
  const node = byId<HTMLFormElement>(form);
  node.querySelectorAll('button').forEach((b) => (b.disabled = true));
  try {
    say(status, await act(), true);
    node.reset();
    renderSettings();
  } catch (err) {
    say(status, errorText(err));
  } finally {
    node.querySelectorAll('button').forEach((b) => (b.disabled = false));
  }
}

export function wireSettings(): void {
  byId('settings-close').addEventListener('click', () => dialog().close());
  byId('register-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void submit('register-form', 'register-status', async () => {
      const password = input('register-password').value;
      if (password !== input('register-confirm').value) throw new Error('The two passwords differ');
      await api('POST', '/api/accounts', { password });
      updateMe(await api<Me>('GET', '/api/me'));
      return `${state.me?.nick} is registered: sign in with this password from now on`;
    });
  });
  byId('password-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void submit('password-form', 'password-status', async () => {
      await api('PUT', '/api/accounts/current', { password: input('current-password').value, newPassword: input('new-password').value }, { checksPassword: true });
      return 'Password changed; your other sessions were signed out';
    });
  });
  byId('away-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const message = input('away-message').value.trim();
    void submit('away-form', 'away-status', async () => {
      updateMe(message ? await api<Me>('PUT', '/api/me/away', { message }) : await api<Me>('DELETE', '/api/me/away'));
      return message ? 'You are away' : 'You are back';
    });
  });
  byId('away-clear').addEventListener('click', () => {
    void submit('away-form', 'away-status', async () => {
      updateMe(await api<Me>('DELETE', '/api/me/away'));
      return 'You are back';
    });
  });
  input('notify-toggle').addEventListener('change', () => {
    void setNotifications(input('notify-toggle').checked).then((on) => {
      input('notify-toggle').checked = on;
      say('notify-status', on ? 'Notifications on for mentions, private messages and alerts' : 'Notifications off', on);
    });
  });
  input('transport-poll').addEventListener('change', () => {
    setTransportSetting(input('transport-poll').checked);
    renderMe();
  });
}
