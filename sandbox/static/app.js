/* milestone-bot sandbox page: renders what the local Slack holds for one person and sends
 * what that person does to /api/*. Dependency-free; no build step. */
(() => {
  'use strict';

  // Emoji shortcodes the bot uses (handlers/blocks), plus a few common ones.
  const EMOJI = {
    arrows_counterclockwise: '🔄', bell: '🔔', card_index_dividers: '🗂️', door: '🚪', gift: '🎁',
    inbox_tray: '📥', sunrise: '🌅', bust_in_silhouette: '👤', calendar: '📆',
    hammer_and_wrench: '🛠️', handshake: '🤝', heavy_dollar_sign: '💲', heavy_plus_sign: '➕',
    hourglass_flowing_sand: '⏳', hourglass: '⌛', large_blue_circle: '🔵',
    large_green_circle: '🟢', large_yellow_circle: '🟡', large_orange_circle: '🟠',
    red_circle: '🔴', leftwards_arrow_with_hook: '↩️', lock: '🔒', unlock: '🔓', memo: '📝',
    moneybag: '💰', money_with_wings: '💸', no_entry_sign: '🚫', no_entry: '⛔', office: '🏢',
    package: '📦', page_facing_up: '📄', pencil: '📝', pencil2: '✏️', point_right: '👉',
    rocket: '🚀', scales: '⚖️', scroll: '📜', small_blue_diamond: '🔹', small_orange_diamond: '🔸',
    sparkles: '✨', tada: '🎉', warning: '⚠️', wastebasket: '🗑️', white_check_mark: '✅',
    heavy_check_mark: '✔️', white_circle: '⚪', x: '❌', eyes: '👀', wave: '👋',
    '+1': '👍', thumbsup: '👍', information_source: 'ℹ️', clock3: '🕒', alarm_clock: '⏰',
    mag: '🔍', link: '🔗', speech_balloon: '💬', receipt: '🧾', bank: '🏦',
    chart_with_upwards_trend: '📈', calendar_spiral: '🗓️', spiral_calendar_pad: '🗓️',
    question: '❓', exclamation: '❗', arrow_right: '➡️', heavy_minus_sign: '➖',
    raised_hands: '🙌', star: '⭐', zap: '⚡', lock_with_ink_pen: '🔏', busts_in_silhouette: '👥',
  };
  const PALETTE = ['#e8912d', '#2c7cb0', '#9f69ad', '#c93f5a', '#3aa3a0', '#5b8a3c', '#b0682c'];
  const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August',
    'September', 'October', 'November', 'December'];
  const GROUP_SECONDS = 300;
  // Below this width (app.css: the same number) the page is a phone's: shorter texts.
  const NARROW = window.matchMedia('(max-width: 560px)');

  const ui = {
    me: new URLSearchParams(location.search).get('as') || '',
    view: location.hash === '#home' ? 'home' : 'channel',
    state: null,
    fetchedAt: 0,
    version: -1,
    poll: null,
    rendered: new Map(),
    dismissed: new Set(),
    peopleKey: '',
    modalKey: '',
    modalViewId: '',
    homeKey: '',
    history: [],
    historyAt: null,
    forceScroll: true,
    lastFocus: null,
    offline: false,
  };

  const $ = (selector, root = document) => root.querySelector(selector);

  /** el('div', {class: 'x', onclick: fn, 'aria-label': '…'}, child, 'text', …) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith('on') && typeof value === 'function') {
        node.addEventListener(name.slice(2), value);
      } else if (name === 'class') {
        node.className = value;
      } else if (name === 'text') {
        node.textContent = value;
      } else if (value === true) {
        node.setAttribute(name, '');
      } else {
        node.setAttribute(name, String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ------------------------------------------------------------------ server

  async function api(path, body) {
    const response = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok || data.ok === false) {
      throw new Error(data.error || `The sandbox answered HTTP ${response.status}`);
    }
    return data;
  }

  async function pollLoop() {
    for (;;) {
      const me = ui.me;
      const controller = new AbortController();
      ui.poll = controller;
      const query = new URLSearchParams({ since: String(ui.version), wait: ui.version < 0 ? '0' : '20' });
      if (me) query.set('as', me);
      try {
        const response = await fetch(`/api/state?${query}`, { signal: controller.signal, cache: 'no-store' });
        const data = await response.json();
        if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
        if (me !== ui.me) continue; // switched person meanwhile
        setOffline(false);
        ui.version = data.version;
        try {
          apply(data);
        } catch (bug) {
          setTimeout(() => { throw bug; }); // a rendering bug: report it, keep polling
        }
      } catch (error) {
        if (error.name === 'AbortError') continue;
        setOffline(true);
        await new Promise((resolve) => setTimeout(resolve, 1500));
      }
    }
  }

  function setOffline(offline) {
    if (offline && !ui.offline) {
      toast('Lost the sandbox. Is “milestone-bot sandbox” still running? Retrying…', 'error');
    }
    ui.offline = offline;
  }

  function toast(message, kind) {
    const node = el('div', { class: `toast ${kind || ''}` }, message);
    $('#toasts').append(node);
    setTimeout(() => node.remove(), kind === 'error' ? 8000 : 4000);
  }

  // ------------------------------------------------------------------ time

  function tz() {
    const st = ui.state;
    return (st && st.users[st.viewer] && st.users[st.viewer].tz) || 'UTC';
  }

  function sandboxNow() {
    if (!ui.state) return new Date();
    return new Date(ui.state.now_ms + (Date.now() - ui.fetchedAt));
  }

  function format(date, options) {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz(), ...options }).format(date);
  }

  function dayKey(date) {
    return new Intl.DateTimeFormat('en-CA', {
      timeZone: tz(), year: 'numeric', month: '2-digit', day: '2-digit',
    }).format(date);
  }

  function dayDiff(date) {
    const a = Date.parse(`${dayKey(date)}T00:00:00Z`);
    const b = Date.parse(`${dayKey(sandboxNow())}T00:00:00Z`);
    return Math.round((a - b) / 86400000);
  }

  function ordinal(n) {
    const rest = n % 100;
    if (rest >= 11 && rest <= 13) return `${n}th`;
    return `${n}${{ 1: 'st', 2: 'nd', 3: 'rd' }[n % 10] || 'th'}`;
  }

  function parts(date) {
    const out = {};
    for (const p of new Intl.DateTimeFormat('en-US', {
      timeZone: tz(), year: 'numeric', month: 'numeric', day: 'numeric', weekday: 'long',
    }).formatToParts(date)) out[p.type] = p.value;
    return { year: out.year, month: Number(out.month), day: Number(out.day), weekday: out.weekday };
  }

  function pretty(date, fallback) {
    const diff = dayDiff(date);
    if (diff === 0) return 'Today';
    if (diff === -1) return 'Yesterday';
    if (diff === 1) return 'Tomorrow';
    return fallback;
  }

  /** Slack's <!date^…> tokens, in the viewer's time zone. */
  function slackDate(epoch, template) {
    const date = new Date(epoch * 1000);
    const p = parts(date);
    const long = `${MONTHS[p.month - 1]} ${ordinal(p.day)}, ${p.year}`;
    const short = `${MONTHS[p.month - 1].slice(0, 3)} ${p.day}, ${p.year}`;
    const tokens = {
      date_num: dayKey(date),
      date: long,
      date_short: short,
      date_long: `${p.weekday}, ${long}`,
      date_pretty: pretty(date, long),
      date_short_pretty: pretty(date, short),
      date_long_pretty: pretty(date, `${p.weekday}, ${long}`),
      time: format(date, { hour: 'numeric', minute: '2-digit' }),
      time_secs: format(date, { hour: 'numeric', minute: '2-digit', second: '2-digit' }),
      ago: ago(date),
    };
    return template.replace(/\{(\w+)\}/g, (whole, name) => (name in tokens ? tokens[name] : whole));
  }

  function ago(date) {
    const seconds = Math.round((sandboxNow() - date) / 1000);
    const future = seconds < 0;
    const s = Math.abs(seconds);
    const [n, unit] = s < 60 ? [s, 'second'] : s < 3600 ? [Math.round(s / 60), 'minute']
      : s < 86400 ? [Math.round(s / 3600), 'hour'] : [Math.round(s / 86400), 'day'];
    const text = `${n} ${unit}${n === 1 ? '' : 's'}`;
    return future ? `in ${text}` : `${text} ago`;
  }

  function tsDate(ts) {
    return new Date(Number(String(ts).split('.')[0]) * 1000);
  }

  function compareTs(a, b) {
    const [as, au = '0'] = String(a).split('.');
    const [bs, bu = '0'] = String(b).split('.');
    return Number(as) - Number(bs) || Number(au.padEnd(6, '0')) - Number(bu.padEnd(6, '0'));
  }

  // ------------------------------------------------------------------ mrkdwn

  function decode(text) {
    return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  }

  function emojiNode(shortcode) {
    const name = shortcode.slice(1, -1);
    const char = EMOJI[name];
    if (!char) return document.createTextNode(shortcode);
    return el('span', { class: 'emoji', role: 'img', 'aria-label': name.replace(/_/g, ' '), title: shortcode }, char);
  }

  function emojiText(text) {
    return text.replace(/:([a-z0-9_+-]+):/g, (whole, name) => EMOJI[name] || whole);
  }

  function userName(id) {
    const user = ui.state && ui.state.users[id];
    return user ? user.name : null;
  }

  function angle(inner) {
    const [target, label] = splitOnce(inner, '|');
    if (target.startsWith('@')) {
      const id = target.slice(1);
      const name = userName(id) || label || id;
      const me = ui.state && id === ui.state.viewer;
      return el('span', { class: `mention${me ? ' me' : ''}`, title: me ? 'you' : undefined }, `@${name}`);
    }
    if (target.startsWith('#')) {
      const id = target.slice(1);
      const name = (ui.state && ui.state.channels[id]) || label || id;
      return el('span', { class: 'channel-link' }, `#${name}`);
    }
    if (target.startsWith('!date^')) {
      const [, epoch, template, link] = target.split('^');
      const text = slackDate(Number(epoch), decode(template || '{date_short}'));
      const node = el('time', {
        class: 'date', datetime: new Date(Number(epoch) * 1000).toISOString(),
        title: `${label ? decode(label) : ''} — shown in your time zone (${tz()})`,
      }, text);
      if (link) return el('a', { href: link, target: '_blank', rel: 'noopener' }, node);
      return node;
    }
    if (target === '!here' || target === '!channel' || target === '!everyone') {
      return el('span', { class: 'mention' }, `@${target.slice(1)}`);
    }
    if (target.startsWith('!subteam^')) return el('span', { class: 'mention' }, decode(label || '@group'));
    if (/^(https?|mailto):/.test(target)) {
      return el('a', { href: decode(target), target: '_blank', rel: 'noopener noreferrer' }, decode(label || target));
    }
    return document.createTextNode(`<${decode(inner)}>`);
  }

  function splitOnce(text, sep) {
    const at = text.indexOf(sep);
    return at < 0 ? [text, ''] : [text.slice(0, at), text.slice(at + 1)];
  }

  const INLINE = new RegExp([
    '(`[^`\\n]+`)',
    '(<[^<>\\n]+>)',
    '(:[a-z0-9_+\\-]+:)',
    '((?<![\\p{L}\\p{N}*])\\*(?!\\s)[^*\\n]+?(?<!\\s)\\*(?![\\p{L}\\p{N}*]))',
    '((?<![\\p{L}\\p{N}_])_(?!\\s)[^_\\n]+?(?<!\\s)_(?![\\p{L}\\p{N}_]))',
    '((?<![\\p{L}\\p{N}~])~(?!\\s)[^~\\n]+?(?<!\\s)~(?![\\p{L}\\p{N}~]))',
  ].join('|'), 'gu');

  function inline(text) {
    const out = [];
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      if (match.index > last) out.push(document.createTextNode(decode(text.slice(last, match.index))));
      const token = match[0];
      const body = token.slice(1, -1);
      if (match[1]) out.push(el('code', {}, decode(body)));
      else if (match[2]) out.push(angle(body));
      else if (match[3]) out.push(emojiNode(token));
      else if (match[4]) out.push(el('b', {}, inline(body)));
      else if (match[5]) out.push(el('i', {}, inline(body)));
      else if (match[6]) out.push(el('s', {}, inline(body)));
      last = match.index + token.length;
    }
    if (last < text.length) out.push(document.createTextNode(decode(text.slice(last))));
    return out;
  }

  function mrkdwn(text) {
    const root = el('div', { class: 'mrkdwn' });
    String(text || '').split('```').forEach((chunk, index) => {
      if (index % 2 === 1) {
        root.append(el('pre', {}, decode(chunk.replace(/^\n/, ''))));
        return;
      }
      let quote = null;
      chunk.split('\n').forEach((line, number) => {
        if (line.startsWith('>')) {
          if (quote) quote.append('\n');
          else root.append((quote = el('blockquote')));
          quote.append(...inline(line.slice(1).replace(/^ /, '')));
          return;
        }
        if (quote) quote = null;
        else if (number > 0) root.append('\n');
        root.append(...inline(line));
      });
    });
    return root;
  }

  function textObject(obj) {
    if (!obj) return '';
    if (obj.type === 'mrkdwn') return mrkdwn(obj.text);
    return el('span', { class: 'plain' }, obj.emoji === false ? obj.text : emojiText(obj.text || ''));
  }

  function plainString(obj) {
    if (!obj) return '';
    return obj.emoji === false ? obj.text : emojiText(obj.text || '');
  }

  // ------------------------------------------------------------------ Block Kit

  /** ctx: {surface: 'message'|'home'|'modal', ts?, viewId?, errors?} */
  function renderBlocks(blocks, ctx) {
    const wrap = el('div', { class: 'blocks' });
    (blocks || []).forEach((block, index) => {
      const node = renderBlock(block, index, ctx);
      if (node) wrap.append(node);
    });
    return wrap;
  }

  function renderBlock(block, index, ctx) {
    const blockId = block.block_id || `auto-block-${index}`;
    switch (block.type) {
      case 'section': {
        const main = el('div', { class: 'b-section-main' });
        if (block.text) main.append(textObject(block.text));
        if (block.fields && block.fields.length) {
          main.append(el('div', { class: 'b-fields' }, block.fields.map(textObject)));
        }
        const node = el('div', { class: 'b-section', 'data-block-id': blockId }, main);
        if (block.accessory) {
          const acc = renderElement(block.accessory, blockId, index, 0, ctx);
          node.append(el('div', { class: 'b-accessory' }, acc));
        }
        return node;
      }
      case 'context':
        return el('div', { class: 'b-context' }, (block.elements || []).map((item) => (
          item.type === 'image'
            ? el('img', { src: item.image_url, alt: item.alt_text || '' })
            : textObject(item))));
      case 'divider':
        return el('hr', { class: 'b-divider' });
      case 'header':
        return el('div', { class: 'b-header', role: 'heading', 'aria-level': '3' }, plainString(block.text));
      case 'actions':
        return el('div', { class: 'b-actions', role: 'group', 'data-block-id': blockId },
          (block.elements || []).map((element, position) => renderElement(element, blockId, index, position, ctx)));
      case 'input':
        if (ctx.surface === 'modal') return renderInput(block, blockId, index, ctx);
        return null;
      case 'image':
        return el('img', { class: 'b-image', src: block.image_url, alt: block.alt_text || '' });
      case 'rich_text':
        return el('div', { class: 'mrkdwn' }, richText(block));
      default:
        return el('div', { class: 'b-unknown' }, `[${block.type} block]`);
    }
  }

  function richText(node) {
    if (!node) return '';
    if (typeof node.text === 'string') return node.text;
    return (node.elements || []).map(richText).join('');
  }

  function renderElement(element, blockId, index, position, ctx) {
    const actionId = element.action_id || `auto-action-${index}-${position}`;
    if (element.type === 'button') {
      const style = element.style === 'primary' ? ' btn-primary' : element.style === 'danger' ? ' btn-danger' : '';
      const button = el('button', { type: 'button', class: `btn${style}`, 'data-action-id': actionId }, plainString(element.text));
      button.addEventListener('click', () => press(button, element, { action_id: actionId, block_id: blockId, value: element.value }, ctx));
      return button;
    }
    if (element.type === 'static_select' || element.type === 'overflow') {
      const select = el('select', { class: 'select-inline', 'aria-label': plainString(element.placeholder) || 'Choose' },
        el('option', { value: '' }, plainString(element.placeholder) || '…'),
        allOptions(element).map((o) => el('option', { value: o.value }, plainString(o.text))));
      select.addEventListener('change', () => {
        if (select.value) press(select, element, { action_id: actionId, block_id: blockId, value: select.value }, ctx);
      });
      return select;
    }
    return el('span', { class: 'b-unknown' }, `[${element.type}]`);
  }

  function allOptions(element) {
    const options = [...(element.options || [])];
    for (const group of element.option_groups || []) options.push(...(group.options || []));
    return options;
  }

  async function press(control, element, action, ctx) {
    if (element.confirm && !(await confirmDialog(element.confirm))) return;
    if (element.url) window.open(element.url, '_blank', 'noopener');
    const body = { as: ui.me, ...action };
    if (ctx.surface === 'message') body.ts = ctx.ts;
    else body.view_id = ctx.viewId;
    if (ctx.surface === 'modal') body.values = collectValues($('#modal-form'));
    control.disabled = true;
    try {
      await api('/api/click', body);
    } catch (error) {
      toast(error.message, 'error');
    } finally {
      control.disabled = false;
    }
  }

  function confirmDialog(confirm) {
    const dialog = $('#confirm');
    $('#confirm-title').textContent = plainString(confirm.title) || 'Are you sure?';
    $('#confirm-text').replaceChildren(textObject(confirm.text));
    const ok = $('#confirm-ok');
    ok.textContent = plainString(confirm.confirm) || 'Yes';
    ok.className = confirm.style === 'danger' ? 'btn btn-danger btn-solid' : 'btn btn-primary';
    $('#confirm-deny').textContent = plainString(confirm.deny) || 'Cancel';
    return new Promise((resolve) => {
      dialog.returnValue = '';
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true });
      dialog.showModal();
      ok.focus();
    });
  }

  // ------------------------------------------------------------------ modal inputs

  const TEXT_INPUTS = new Set(['plain_text_input', 'number_text_input', 'email_text_input', 'url_text_input']);
  const SINGLE_SELECTS = new Set(['static_select', 'users_select', 'external_select', 'conversations_select', 'channels_select']);
  const MULTI_CHOICES = new Set(['multi_users_select', 'multi_static_select', 'checkboxes', 'multi_conversations_select', 'multi_channels_select']);

  function people() {
    return (ui.state && ui.state.people) || [];
  }

  function choicesFor(element) {
    if (element.type.includes('users')) {
      return people().map((p) => ({ value: p.id, label: `${p.real_name} (@${p.name})` }));
    }
    if (element.type.includes('conversations') || element.type.includes('channels')) {
      return Object.entries(ui.state.channels).map(([id, name]) => ({ value: id, label: `#${name}` }));
    }
    return allOptions(element).map((o) => ({ value: o.value, label: plainString(o.text), description: o.description }));
  }

  function initialOf(element) {
    const single = element.initial_user || element.initial_conversation || element.initial_channel
      || (element.initial_option && element.initial_option.value) || element.initial_date
      || element.initial_time || element.initial_value;
    const many = element.initial_users || element.initial_conversations || element.initial_channels
      || (element.initial_options || []).map((o) => o.value);
    return { single: single ?? '', many: many || [] };
  }

  function renderInput(block, blockId, index, ctx) {
    const element = block.element || {};
    const actionId = element.action_id || `auto-action-${index}-0`;
    const id = `f-${blockId}`;
    const error = (ctx.errors || {})[blockId];
    const hintId = block.hint ? `${id}-hint` : null;
    const errorId = error ? `${id}-error` : null;
    const described = [errorId, hintId].filter(Boolean).join(' ') || undefined;
    const field = el('div', {
      class: `field${error ? ' has-error' : ''}`,
      'data-block': blockId, 'data-action': actionId, 'data-type': element.type,
    });
    const labelId = `${id}-label`;
    const optional = block.optional ? el('span', { class: 'field-optional' }, ' (optional)') : null;
    const initial = initialOf(element);
    const placeholder = plainString(element.placeholder) || undefined;
    const common = { id, name: id, 'aria-describedby': described, 'aria-invalid': error ? 'true' : undefined, 'aria-required': block.optional ? undefined : 'true' };
    let control;
    if (TEXT_INPUTS.has(element.type)) {
      const number = element.type === 'number_text_input';
      const attrs = {
        ...common, placeholder,
        maxlength: element.max_length, minlength: element.min_length,
        inputmode: number ? (element.is_decimal_allowed ? 'decimal' : 'numeric') : undefined,
        type: element.type === 'email_text_input' ? 'email' : element.type === 'url_text_input' ? 'url' : 'text',
      };
      control = element.multiline ? el('textarea', attrs) : el('input', attrs);
      control.value = initial.single;
    } else if (element.type === 'datepicker') {
      control = el('input', { ...common, type: 'date' });
      control.value = initial.single;
    } else if (element.type === 'timepicker') {
      control = el('input', { ...common, type: 'time' });
      control.value = initial.single;
    } else if (SINGLE_SELECTS.has(element.type)) {
      control = el('select', common,
        el('option', { value: '' }, placeholder || 'Choose…'),
        choicesFor(element).map((c) => el('option', { value: c.value }, c.label)));
      control.value = initial.single;
    } else if (MULTI_CHOICES.has(element.type) || element.type === 'radio_buttons') {
      const kind = element.type === 'radio_buttons' ? 'radio' : 'checkbox';
      control = el('div', {
        class: `choices${element.type.startsWith('multi_') ? ' inline' : ''}`, role: 'group',
        'aria-labelledby': labelId, 'aria-describedby': described,
        'aria-invalid': error ? 'true' : undefined, id,
      }, choicesFor(element).map((c) => el('label', { class: 'choice' },
        el('input', {
          type: kind, name: id, value: c.value,
          checked: kind === 'radio' ? initial.single === c.value : initial.many.includes(c.value),
        }),
        el('span', {}, c.label, c.description ? el('span', { class: 'choice-desc' }, plainString(c.description)) : null))));
    } else {
      control = el('div', { class: 'b-unknown' }, `[${element.type} input]`);
    }
    const groupLike = control.getAttribute && control.getAttribute('role') === 'group';
    field.append(
      groupLike
        ? el('span', { class: 'field-label', id: labelId }, plainString(block.label), optional)
        : el('label', { class: 'field-label', id: labelId, for: id }, plainString(block.label), optional),
      control,
    );
    if (error) field.append(el('div', { class: 'field-error', id: errorId }, el('span', { 'aria-hidden': 'true' }, '⚠'), el('span', {}, error)));
    if (block.hint) field.append(el('div', { class: 'field-hint', id: hintId }, plainString(block.hint)));
    return field;
  }

  function fieldValue(field) {
    const type = field.dataset.type;
    if (MULTI_CHOICES.has(type)) {
      return [...field.querySelectorAll('input:checked')].map((i) => i.value);
    }
    if (type === 'radio_buttons') {
      const checked = field.querySelector('input:checked');
      return checked ? checked.value : null;
    }
    const control = field.querySelector('input, textarea, select');
    if (!control) return null;
    return control.value === '' ? null : control.value;
  }

  function collectValues(form) {
    const values = {};
    for (const field of form.querySelectorAll('.field')) {
      (values[field.dataset.block] ||= {})[field.dataset.action] = fieldValue(field);
    }
    return values;
  }

  function restoreValues(form, values) {
    for (const field of form.querySelectorAll('.field')) {
      const value = (values[field.dataset.block] || {})[field.dataset.action];
      if (value === undefined) continue;
      if (Array.isArray(value) || field.querySelector('input[type=radio]')) {
        for (const input of field.querySelectorAll('input')) {
          input.checked = Array.isArray(value) ? value.includes(input.value) : input.value === value;
        }
      } else {
        const control = field.querySelector('input, textarea, select');
        if (control) control.value = value ?? '';
      }
    }
  }

  // ------------------------------------------------------------------ modal

  function renderModal(st) {
    const dialog = $('#modal');
    const stack = st.modals || [];
    const top = stack[stack.length - 1];
    if (!top) {
      ui.modalKey = '';
      ui.modalViewId = '';
      if (dialog.open) dialog.close();
      return;
    }
    const key = JSON.stringify([top.id, top.hash, top.errors, stack.length]);
    if (key === ui.modalKey && dialog.open) return;
    const form = $('#modal-form');
    const typed = ui.modalViewId === top.id ? collectValues(form) : null;
    $('#modal-title').textContent = plainString(top.title) || 'milestone-bot';
    const body = renderBlocks(top.blocks, { surface: 'modal', viewId: top.id, errors: top.errors });
    $('#modal-body').replaceChildren(...body.childNodes);
    if (typed) restoreValues(form, typed);
    const submit = $('#modal-submit');
    submit.hidden = !top.submit;
    submit.textContent = plainString(top.submit) || 'Submit';
    submit.disabled = false;
    $('#modal-close').textContent = plainString(top.close) || 'Cancel';
    form.dataset.viewId = top.id;
    const fresh = !dialog.open || ui.modalViewId !== top.id;
    ui.modalKey = key;
    ui.modalViewId = top.id;
    if (!dialog.open) {
      ui.lastFocus = document.activeElement;
      dialog.showModal();
    }
    const firstError = form.querySelector('.has-error input, .has-error textarea, .has-error select');
    const first = form.querySelector('.modal-body input, .modal-body textarea, .modal-body select');
    if (firstError) firstError.focus();
    else if (fresh && first) first.focus();
    else if (fresh) (submit.hidden ? $('#modal-close') : submit).focus();
  }

  async function submitModal(event) {
    event.preventDefault();
    const form = $('#modal-form');
    const submit = $('#modal-submit');
    if (submit.hidden) return;
    submit.disabled = true;
    try {
      await api('/api/submit', { as: ui.me, view_id: form.dataset.viewId, values: collectValues(form) });
    } catch (error) {
      toast(error.message, 'error');
      submit.disabled = false;
    }
  }

  async function closeModal() {
    const form = $('#modal-form');
    try {
      await api('/api/close', { as: ui.me, view_id: form.dataset.viewId });
    } catch (error) {
      toast(error.message, 'error');
    }
  }

  // ------------------------------------------------------------------ people

  function initials(name) {
    return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('');
  }

  function avatar(id, small) {
    const st = ui.state;
    const bot = st && id === st.bot.id;
    const user = (st && st.users[id]) || {};
    const name = user.real_name || user.name || id || '?';
    let hash = 0;
    for (const ch of String(id)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
    return el('span', {
      class: `avatar${small ? ' small' : ''}${bot ? ' bot' : ''}`,
      style: bot ? undefined : `background:${PALETTE[hash % PALETTE.length]}`,
      'aria-hidden': 'true',
    }, bot ? 'm' : initials(name));
  }

  function renderPeople(st) {
    const key = JSON.stringify([st.people, st.viewer]);
    if (key === ui.peopleKey) return;
    ui.peopleKey = key;
    const focused = document.activeElement && document.activeElement.name === 'person';
    $('#people').replaceChildren(...st.people.map((p) => {
      const [first, ...rest] = p.real_name.split(' ');
      return el('label', { class: 'person', title: `${p.real_name}, ${p.role} · ${p.tz_label}` },
        el('input', {
          type: 'radio', name: 'person', value: p.id, checked: p.id === st.viewer,
          'aria-label': `${p.real_name}, ${p.role}`,
          onchange: () => switchTo(p.id),
        }),
        avatar(p.id),
        el('span', { class: 'person-text' },
          el('span', { class: 'person-name' }, first, rest.length ? el('span', { class: 'person-last' }, ` ${rest.join(' ')}`) : null),
          el('span', { class: 'person-role' }, `${p.role} · ${p.tz_label}`)));
    }));
    const mine = $(`#people input[value="${st.viewer}"]`);
    if (focused) mine.focus();
    mine.closest('.person').scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }

  function switchTo(id) {
    if (id === ui.me) return;
    ui.me = id;
    const url = new URL(location.href);
    url.searchParams.set('as', id);
    history.replaceState(null, '', url);
    ui.version = -1;
    ui.rendered = new Map();
    ui.homeKey = '';
    ui.modalKey = '';
    ui.modalViewId = '';
    ui.forceScroll = true;
    ui.historyAt = null;
    $('#timeline').replaceChildren();
    $('#home').replaceChildren();
    if ($('#modal').open) $('#modal').close();
    if (ui.poll) ui.poll.abort();
    if (ui.view === 'home') api('/api/home_opened', { as: id }).catch((e) => toast(e.message, 'error'));
  }

  // ------------------------------------------------------------------ clock

  function renderClock() {
    const st = ui.state;
    if (!st) return;
    const now = sandboxNow();
    const zone = (st.people.find((p) => p.id === st.viewer) || {}).tz_label || tz();
    const narrow = NARROW.matches;
    const when = format(now, narrow
      ? { weekday: 'short', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' }
      : { weekday: 'short', month: 'short', day: 'numeric', year: 'numeric', hour: 'numeric', minute: '2-digit' });
    $('#clock-now').textContent = narrow ? when : `${when} (${zone})`;
    $('#clock-now').setAttribute('datetime', now.toISOString());
    $('#clock-now').title = `${format(now, { dateStyle: 'full', timeStyle: 'short' })} (${zone})`;
    const days = st.offset_days;
    const ahead = `${Number(days.toFixed(2))} day${days === 1 ? '' : 's'} ahead`;
    $('#clock-offset').textContent = days > 0 ? (narrow ? ahead : `${ahead} of real time`) : '';
  }

  async function advance(days, button) {
    const buttons = document.querySelectorAll('.clock-button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const result = await api('/api/clock', { days });
      const now = new Date(result.now);
      toast(`Moved ${days} day${days === 1 ? '' : 's'} ahead: it is now ${format(now, { weekday: 'long', month: 'long', day: 'numeric', hour: 'numeric', minute: '2-digit' })}. Due reminders and releases have run.`);
    } catch (error) {
      toast(error.message, 'error');
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      button.focus();
    }
  }

  // ------------------------------------------------------------------ timeline

  function timelineItems(st) {
    const items = [];
    for (const m of st.messages) items.push({ kind: 'msg', ts: m.ts, data: m, author: m.user, order: 2 });
    for (const e of st.ephemerals) {
      if (!ui.dismissed.has(`${st.viewer}:${e.ts}`)) items.push({ kind: 'eph', ts: e.ts, data: e, author: st.bot.id, order: 1 });
    }
    for (const t of st.typed) items.push({ kind: 'typed', ts: t.ts, data: t, author: st.viewer, order: 0 });
    items.sort((a, b) => compareTs(a.ts, b.ts) || a.order - b.order);
    return items;
  }

  function dayLabel(date) {
    const diff = dayDiff(date);
    if (diff === 0) return 'Today';
    if (diff === -1) return 'Yesterday';
    const p = parts(date);
    return `${p.weekday}, ${MONTHS[p.month - 1]} ${ordinal(p.day)}${p.year !== parts(sandboxNow()).year ? `, ${p.year}` : ''}`;
  }

  function renderTimeline(st) {
    const timeline = $('#timeline');
    const nearBottom = timeline.scrollHeight - timeline.scrollTop - timeline.clientHeight < 120;
    const today = dayKey(sandboxNow());
    const context = [st.viewer, tz(), today];
    const rows = [{
      key: 'intro', sig: JSON.stringify([context, st.messages.length === 0, st.channel]),
      build: () => intro(st),
    }];
    let previous = null;
    for (const item of timelineItems(st)) {
      const date = tsDate(item.ts);
      const day = dayKey(date);
      if (!previous || dayKey(tsDate(previous.ts)) !== day) {
        const label = dayLabel(date);
        rows.push({ key: `day:${day}`, sig: label, build: () => el('div', { class: 'day', role: 'separator' }, el('span', {}, label)) });
      }
      const continued = Boolean(previous && previous.author === item.author && previous.kind === item.kind
        && item.kind !== 'typed' && dayKey(tsDate(previous.ts)) === day
        && tsDate(item.ts) - tsDate(previous.ts) < GROUP_SECONDS * 1000);
      rows.push({
        key: `${item.kind}:${item.ts}`,
        sig: JSON.stringify([context, item.data, continued]),
        edited: item.data.edited || 0,
        build: () => renderItem(item, st, continued),
      });
      previous = item;
    }
    reconcile(timeline, rows);
    if (nearBottom || ui.forceScroll) {
      timeline.scrollTop = timeline.scrollHeight;
      ui.forceScroll = false;
    }
  }

  function reconcile(container, rows) {
    const kept = new Map();
    rows.forEach((row, index) => {
      let entry = ui.rendered.get(row.key);
      if (!entry || entry.sig !== row.sig) {
        const node = row.build();
        if (entry && row.edited > entry.edited) node.classList.add('updated');
        if (entry) entry.node.replaceWith(node);
        entry = { sig: row.sig, node, edited: row.edited || 0 };
      }
      kept.set(row.key, entry);
      const here = container.children[index];
      if (here !== entry.node) container.insertBefore(entry.node, here || null);
    });
    for (const [key, entry] of ui.rendered) if (!kept.has(key)) entry.node.remove();
    ui.rendered = kept;
  }

  function intro(st) {
    const name = st.channel.name;
    if (st.messages.length) {
      return el('div', { class: 'empty' },
        el('h2', {}, `This is the very beginning of #${name}`),
        el('p', {}, 'Cards update in place when someone acts on them; reminders appear as thread replies. Switch person ',
          el('span', { class: 'where-wide' }, 'on the left'), el('span', { class: 'where-narrow' }, 'at the top'),
          ' to answer as them.'));
    }
    const me = st.people.find((p) => p.id === st.viewer) || st.people[0];
    const due = new Date(sandboxNow().getTime() + 30 * 86400000).toISOString().slice(0, 10);
    const tryIt = (text) => el('button', { type: 'button', class: 'try', onclick: () => fill(text) }, text);
    return el('div', { class: 'empty' },
      el('h2', {}, `This is the very beginning of #${name}`),
      el('p', {}, `You are ${me.real_name}, playing the ${me.role}. Everything below goes through the real bot. Click a command to put it in the message box, then press Enter:`),
      el('ol', {},
        el('li', {}, 'As Carol (client), create a contract: ', tryIt('/milestone new "Website redesign" client=@carol freelancer=@fred')),
        el('li', {}, 'Add milestones: ', tryIt(`/milestone add "Design" 1500 ${due} "Wireframes"`), ' or ', tryIt('/milestone add'), ' for a form.'),
        el('li', {}, 'Agree: ', tryIt('/milestone start'), ', then switch to Fred and click ', el('b', {}, 'Agree'), ' on the card.'),
        el('li', {}, 'As Carol click ', el('b', {}, 'Fund'), '; as Fred propose ', tryIt('/milestone edit 1 amount=2000'), ' and accept it as Carol.'),
        el('li', {}, 'As Fred ', tryIt('/milestone submit "Designs are in Figma"'), ', then move time ', el('b', {}, '+14 days'), ' (and ', el('b', {}, '+1 day'), ') to see the automatic release.')),
      el('p', {}, 'In a hurry? Restart with ', el('code', {}, 'milestone-bot sandbox --demo'), ' for a contract already in progress.'));
  }

  function fill(text) {
    const input = $('#composer-input');
    input.value = text;
    input.focus();
    input.setSelectionRange(text.length, text.length);
  }

  function renderItem(item, st, continued) {
    const { kind, data } = item;
    const author = item.author;
    const bot = author === st.bot.id;
    const user = st.users[author] || {};
    const date = tsDate(item.ts);
    const classes = ['msg'];
    if (continued) classes.push('continued');
    if (kind === 'eph') classes.push('ephemeral');
    if (kind === 'typed') classes.push('typed');
    const main = el('div', { class: 'msg-main' });
    main.append(el('div', { class: 'msg-head' },
      el('span', { class: 'msg-name' }, bot ? st.bot.name : (user.real_name || user.name || author)),
      bot ? el('span', { class: 'badge' }, 'APP') : null,
      el('time', { class: 'msg-time', datetime: date.toISOString(), title: format(date, { dateStyle: 'full', timeStyle: 'short' }) },
        format(date, { hour: 'numeric', minute: '2-digit' })),
      data.edited ? el('span', { class: 'msg-edited' }, '(edited)') : null));
    if (kind === 'eph' || kind === 'typed') {
      main.append(el('div', { class: 'only-you' },
        el('span', { 'aria-hidden': 'true' }, '👁'), 'Only visible to you',
        kind === 'eph' ? el('button', {
          type: 'button',
          onclick: () => { ui.dismissed.add(`${st.viewer}:${data.ts}`); renderTimeline(ui.state); },
        }, 'Dismiss') : null));
    }
    if (kind === 'typed') {
      main.append(el('div', { class: 'typed-text' }, data.text));
    } else {
      main.append(body(data, { surface: 'message', ts: data.ts }));
    }
    if (kind === 'msg' && data.replies && data.replies.length) {
      const count = data.replies.length;
      main.append(el('div', { class: 'thread', role: 'group', 'aria-label': `Thread: ${count} repl${count === 1 ? 'y' : 'ies'}` },
        el('div', { class: 'thread-label' }, `${count} repl${count === 1 ? 'y' : 'ies'}`),
        data.replies.map((reply) => threadReply(reply, st))));
    }
    return el('article', { class: classes.join(' '), 'data-ts': data.ts, 'data-kind': kind }, avatar(author), main);
  }

  function body(data, ctx) {
    return data.blocks && data.blocks.length ? renderBlocks(data.blocks, ctx) : mrkdwn(data.text);
  }

  function threadReply(reply, st) {
    const bot = reply.user === st.bot.id;
    const user = st.users[reply.user] || {};
    const date = tsDate(reply.ts);
    return el('article', { class: 'msg reply', 'data-ts': reply.ts },
      avatar(reply.user, true),
      el('div', { class: 'msg-main' },
        el('div', { class: 'msg-head' },
          el('span', { class: 'msg-name' }, bot ? st.bot.name : (user.real_name || reply.user)),
          bot ? el('span', { class: 'badge' }, 'APP') : null,
          el('time', { class: 'msg-time', datetime: date.toISOString() },
            format(date, { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' }))),
        body(reply, { surface: 'message', ts: reply.ts })));
  }

  // ------------------------------------------------------------------ Home

  function renderHome(st) {
    const home = st.home;
    const direct = st.direct_messages || [];
    const key = JSON.stringify([st.viewer, home, direct, tz(), dayKey(sandboxNow())]);
    if (key === ui.homeKey) return;
    ui.homeKey = key;
    const parts = [home
      ? renderBlocks(home.blocks, { surface: 'home', viewId: home.id })
      : el('p', { class: 'home-empty' }, 'Opening your Home…')];
    if (direct.length) {
      // The app's Messages tab: its direct messages to this person, newest last.
      parts.push(el('h2', { class: 'home-messages-title' }, 'Messages from milestone-bot'));
      for (const message of direct) {
        parts.push(el('div', { class: 'home-message' },
          renderBlocks(message.blocks, { surface: 'message', ts: message.ts })));
      }
    }
    $('#home').replaceChildren(...parts);
  }

  function setView(view) {
    ui.view = view;
    $('#channel-view').hidden = view !== 'channel';
    $('#home-view').hidden = view !== 'home';
    $('#nav-channel').toggleAttribute('aria-current', false);
    $('#nav-home').toggleAttribute('aria-current', false);
    $(view === 'home' ? '#nav-home' : '#nav-channel').setAttribute('aria-current', 'page');
    if (view === 'home') {
      ui.homeKey = '';
      if (ui.state) renderHome(ui.state);
      if (ui.me) api('/api/home_opened', { as: ui.me }).catch((e) => toast(e.message, 'error'));
    } else {
      ui.forceScroll = true;
      if (ui.state) renderTimeline(ui.state);
      $('#composer-input').focus();
    }
    updateTitle();
  }

  function updateTitle() {
    const st = ui.state;
    if (!st) return;
    const me = st.people.find((p) => p.id === st.viewer);
    const where = ui.view === 'home' ? 'Home' : `#${st.channel.name}`;
    document.title = `${where} · ${me ? me.real_name : ''} · milestone-bot sandbox`;
  }

  // ------------------------------------------------------------------ apply a state

  function apply(st) {
    ui.state = st;
    ui.fetchedAt = Date.now();
    if (!ui.me) {
      ui.me = st.viewer;
      if (ui.view === 'home') api('/api/home_opened', { as: ui.me }).catch((e) => toast(e.message, 'error'));
    }
    ui.history = st.typed.map((t) => t.text);
    renderClock();
    renderPeople(st);
    $('#channel-title').textContent = `# ${st.channel.name}`;
    $('#nav-channel-name').textContent = st.channel.name;
    $('#channel-topic').textContent = `${st.channel.topic} · ${st.channel.members.length} people and milestone-bot`;
    $('#composer-input').setAttribute('aria-label', `Message #${st.channel.name} as ${(st.users[st.viewer] || {}).real_name || ''}`);
    renderTimeline(st);
    if (ui.view === 'home') renderHome(st);
    renderModal(st);
    updateTitle();
  }

  // ------------------------------------------------------------------ composer

  function setupComposer() {
    const form = $('#composer');
    const input = $('#composer-input');
    const prefix = '/milestone ';
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text || text === prefix.trim()) return;
      input.value = prefix;
      ui.historyAt = null;
      ui.forceScroll = true;
      try {
        await api('/api/command', { as: ui.me, text });
      } catch (error) {
        toast(error.message, 'error');
        input.value = text;
      }
    });
    input.addEventListener('keydown', (event) => {
      if (event.key !== 'ArrowUp' && event.key !== 'ArrowDown') return;
      const history = ui.history;
      const untouched = input.value.trim() === prefix.trim() || input.value === '';
      if (ui.historyAt === null && !(event.key === 'ArrowUp' && untouched)) return;
      if (!history.length) return;
      event.preventDefault();
      if (event.key === 'ArrowUp') {
        ui.historyAt = ui.historyAt === null ? history.length - 1 : Math.max(0, ui.historyAt - 1);
        input.value = history[ui.historyAt];
      } else if (ui.historyAt !== null && ui.historyAt < history.length - 1) {
        ui.historyAt += 1;
        input.value = history[ui.historyAt];
      } else {
        ui.historyAt = null;
        input.value = prefix;
      }
      input.setSelectionRange(input.value.length, input.value.length);
    });
    input.addEventListener('input', () => {
      if (ui.historyAt !== null && input.value !== ui.history[ui.historyAt]) ui.historyAt = null;
    });
  }

  // ------------------------------------------------------------------ start

  function start() {
    setupComposer();
    for (const button of document.querySelectorAll('.clock-button')) {
      button.addEventListener('click', () => advance(Number(button.dataset.days), button));
    }
    $('#modal-form').addEventListener('submit', submitModal);
    for (const button of document.querySelectorAll('#modal [data-close]')) {
      button.addEventListener('click', closeModal);
    }
    $('#modal').addEventListener('cancel', (event) => { event.preventDefault(); closeModal(); });
    $('#modal').addEventListener('close', () => {
      ui.modalKey = '';
      ui.modalViewId = '';
      const back = ui.lastFocus;
      ui.lastFocus = null;
      if (back && document.contains(back)) back.focus();
      else if (ui.view === 'channel') $('#composer-input').focus();
    });
    window.addEventListener('hashchange', () => setView(location.hash === '#home' ? 'home' : 'channel'));
    setInterval(renderClock, 15000);
    NARROW.addEventListener('change', renderClock);
    setView(ui.view);
    const input = $('#composer-input');
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    pollLoop();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
