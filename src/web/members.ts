import { casefold } from '../shared/names.js';
import { button, el } from './dom.js';
import { currentView, isMe, state } from './state.js';
import type { Member } from './types.js';

/**
 * A member's menu in the member list: talk to them, whois, and for operators and opers the
 * moderation acts. Each runs the slash command it stands for, so both ways behave the same.
 */

export function canModerate(): boolean {
  const view = currentView();
  if (!state.me || !view) return false;
  if (state.me.role !== 'user') return true;
  return view.members?.get(casefold(state.me.nick))?.operator === true;
}

export function memberMenu(run: (line: string) => void): (member: Member, item: HTMLLIElement) => void {
  return (member, item) => {
    const open = item.querySelector('.member-menu');
    document.querySelectorAll('.member-menu').forEach((menu) => menu.remove());
    if (open) return; // a second click closes it
    const menu = el('div', 'member-menu');
    menu.setAttribute('role', 'menu');
    const act = (label: string, line: string) => {
      const b = button(label, () => {
        menu.remove();
        run(line);
      });
      b.setAttribute('role', 'menuitem');
      menu.append(b);
    };
    if (!isMe(member.nick)) act('Message', `/query ${member.nick}`);
    act('Whois', `/whois ${member.nick}`);
    if (canModerate()) {
      act(member.operator ? 'Deop' : 'Op', `/${member.operator ? 'deop' : 'op'} ${member.nick}`);
      if (!isMe(member.nick)) {
        act('Kick', `/kick ${member.nick}`);
        act('Ban 1h', `/ban ${member.nick} 1h`);
      }
    }
    item.append(menu);
  };
}
