// Login with a user name and password (a session cookie; `docs/security.md`).

import { h, replace, notice } from '../lib/dom.js';
import { login } from '../lib/api.js';

export function render(root, ctx) {
  const status = h('div');
  const user = h('input', { id: 'login-user', name: 'user', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h(
    'form.card.login',
    {
      onsubmit: async (e) => {
        e.preventDefault();
        replace(status);
        try {
          const me = await login(user.value, password.value);
          ctx.signedIn(me);
          const next = ctx.params.next;
          ctx.navigate(next && next.startsWith('#/') && !next.startsWith('#/login') ? next : '#/plant');
        } catch (err) {
          password.value = '';
          replace(status, notice('error', err.code === 'unauthorized' ? 'Wrong user name or password.' : err.message));
        }
      },
    },
    h('h1', 'Log in'),
    h('label', { for: 'login-user' }, 'User'),
    user,
    h('label', { for: 'login-password' }, 'Password'),
    password,
    status,
    h('button.primary', { type: 'submit' }, 'Log in'),
  );
  replace(root, form);
}
