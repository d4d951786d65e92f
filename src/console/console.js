// riverwatch duty console: the script behind the page (src/console/index.html).
//
// It reads the JSON API every 10 s and builds the lists with createElement and textContent
// only (never markup from data), so whatever a station name, a comment or a silence reason
// holds is shown as text. The bearer token the user pastes lives in sessionStorage (this tab
// only) and travels in the Authorization header of fetch, never in a cookie: a page of another
// site cannot make the browser send it, which is what makes the console CSRF-safe
// (src/console.rs says more). Times are shown in Beijing time (UTC+8), whatever the browser's
// time zone.
'use strict';

(function () {
  const TOKEN_KEY = 'riverwatch.token';
  const NAME_KEY = 'riverwatch.name';
  const REFRESH_MS = 10000;

  const LEVELS = {
    data: '数据 Data', blue: '蓝色 Blue', yellow: '黄色 Yellow', orange: '橙色 Orange', red: '红色 Red',
  };
  const RULES = {
    exceedance: '超标 Exceedance', class: '水质类别 Class', trend: '趋势 Trend', shift: '突变 Shift',
    rate: '变化率 Rate', station_fault: '站点故障 Station fault', offline: '离线 Offline',
    upstream: '上游预警 Upstream',
  };
  const PARAMS = {
    temp: '水温 Temp', ph: 'pH', do: '溶解氧 DO', cond: '电导率 Cond', turb: '浊度 Turbidity',
    codmn: '高锰酸盐指数 CODMn', cod: '化学需氧量 COD', bod5: '五日生化需氧量 BOD5', nh3n: '氨氮 NH3-N',
    tp: '总磷 TP', tn: '总氮 TN', cu: '铜 Cu', zn: '锌 Zn', f: '氟化物 F', se: '硒 Se', as: '砷 As',
    hg: '汞 Hg', cd: '镉 Cd', cr6: '六价铬 Cr(VI)', pb: '铅 Pb', cn: '氰化物 CN', phenol: '挥发酚 Phenol',
    oil: '石油类 Oil', las: '阴离子表面活性剂 LAS', s2: '硫化物 Sulfide', fcoli: '粪大肠菌群 F. coli',
    chla: '叶绿素a Chl-a',
  };
  // QARTOD flags, as GET /api/v1/stations gives them.
  const QC = { 1: '通过 Pass', 2: '未评估 Not evaluated', 3: '可疑 Suspect', 4: '失败 Fail', 9: '缺失 Missing' };
  const EVENTS = {
    opened: '事件开始 Opened', escalated: '升级 Escalated', spread: '扩散 Spread',
    arrival_confirmed: '到达确认 Arrival confirmed',
    arrival_not_confirmed: '未确认到达 Arrival not confirmed', ended: '事件结束 Ended',
  };
  const ARRIVAL = { pending: '待确认 pending', confirmed: '已确认 confirmed', not_confirmed: '未到达 not confirmed' };
  const CLASSES = ['—', 'Ⅰ', 'Ⅱ', 'Ⅲ', 'Ⅳ', 'Ⅴ', '劣Ⅴ'];

  const $ = (id) => document.getElementById(id);

  // ---- building the page: elements and text nodes only ---------------------------------

  // An element with properties (`class`, `text`, `data-*` attributes, or DOM properties such
  // as `type`, `value`, `hidden`) and children (nodes, or strings that become text nodes).
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = String(v);
      else if (k.startsWith('data-')) node.setAttribute(k, String(v));
      else node[k] = v;
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function table(headers, rows) {
    return el('table', {},
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { text: h })))),
      el('tbody', {}, rows));
  }

  const label = (map, key) => (key === undefined || key === null ? '—' : (map[key] || String(key)));
  const level = (key) => el('span', { class: 'level level-' + key, text: label(LEVELS, key) });

  // RFC 3339 → "2026-11-29 18:00" in Beijing time.
  function bj(iso, seconds) {
    if (!iso) return '—';
    const t = new Date(iso);
    if (isNaN(t.getTime())) return String(iso);
    return new Date(t.getTime() + 8 * 3600e3).toISOString().slice(0, seconds ? 19 : 16).replace('T', ' ');
  }

  function number(v) {
    return typeof v === 'number' && isFinite(v) ? String(Math.round(v * 1000) / 1000) : '—';
  }

  // ---- the API -------------------------------------------------------------------------

  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  // One request: the token in the Authorization header, cookies never sent.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const t = token();
    if (t) headers['Authorization'] = 'Bearer ' + t;
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    return { status: res.status, ok: res.ok, data };
  }

  const why = (r) => (r.data && typeof r.data.error === 'string' ? r.data.error : 'HTTP ' + r.status);

  // ---- state ---------------------------------------------------------------------------

  let who = null; // GET /api/v1/whoami: {role, bureau, name}
  let view = { stations: [], alerts: [], incidents: [], silences: [] };
  let shown = ''; // the JSON last rendered: unchanged data is not rebuilt (keeps focus, no flicker)
  let timer = null;
  let ackTarget = null; // {kind: 'alert'|'incident', id}
  let refreshFailed = false;

  function setStatus(kind, text) {
    const s = $('status');
    s.className = kind;
    s.textContent = text;
  }

  // ---- log in and out ------------------------------------------------------------------

  async function login(t) {
    sessionStorage.setItem(TOKEN_KEY, t);
    let r;
    try {
      r = await api('GET', '/api/v1/whoami');
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      return '无法连接 Cannot reach riverwatch: ' + e.message;
    }
    if (r.status === 200 && r.data && typeof r.data === 'object') {
      who = r.data;
    } else if (r.status === 404 || r.status === 405) {
      // A daemon without /whoami: only the operator's token exists there.
      who = { role: 'operator', bureau: null, name: 'operator' };
    } else {
      sessionStorage.removeItem(TOKEN_KEY);
      return '登录失败 Login refused: ' + why(r);
    }
    showConsole();
    return null;
  }

  function showConsole() {
    const bureau = who.role === 'bureau';
    $('who').textContent = bureau
      ? '本局 Bureau ' + (who.bureau || '') + ' · ' + (who.name || '')
      : '值班员 Operator · ' + (who.name || 'operator');
    $('logout').hidden = false;
    $('login').hidden = true;
    $('console').hidden = false;
    $('ack-bureau-label').hidden = bureau;
    $('ack-bureau').required = !bureau;
    const name = sessionStorage.getItem(NAME_KEY) || '';
    if (!$('ack-by').value) $('ack-by').value = name;
    if (!$('silence-author').value) $('silence-author').value = name;
    shown = '';
    refresh();
    if (timer === null) timer = setInterval(refresh, REFRESH_MS);
  }

  function logout(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    who = null;
    if (timer !== null) clearInterval(timer);
    timer = null;
    $('who').textContent = '未登录 Not logged in';
    $('logout').hidden = true;
    $('console').hidden = true;
    $('login').hidden = false;
    $('ack-panel').hidden = true;
    $('token').value = '';
    $('login-error').textContent = message || '';
  }

  // ---- refresh -------------------------------------------------------------------------

  async function refresh() {
    if (!token()) return;
    let answers;
    try {
      answers = await Promise.all(
        ['/api/v1/stations', '/api/v1/alerts', '/api/v1/incidents', '/api/v1/silences']
          .map((p) => api('GET', p)));
    } catch (e) {
      refreshFailed = true;
      setStatus('error', '无法连接 Cannot reach riverwatch: ' + e.message);
      return;
    }
    if (answers.some((r) => r.status === 401)) {
      logout('令牌已失效，请重新登录 The token is no longer accepted; log in again');
      return;
    }
    const bad = answers.find((r) => !r.ok || !Array.isArray(r.data));
    if (bad) {
      refreshFailed = true;
      setStatus('error', '读取失败 Could not read: ' + why(bad));
      return;
    }
    if (refreshFailed) {
      refreshFailed = false;
      setStatus('', '');
    }
    const [stations, alerts, incidents, silences] = answers.map((r) => r.data);
    const json = JSON.stringify(answers.map((r) => r.data));
    if (json !== shown) {
      shown = json;
      view = { stations, alerts, incidents, silences };
      render();
    }
    $('updated').textContent = '更新于 Updated ' + bj(new Date().toISOString(), true) + ' (UTC+8)';
  }

  function render() {
    const stations = new Map(view.stations.map((s) => [s.id, s]));
    const alerts = new Map(view.alerts.map((a) => [a.id, a]));
    const station = (id) => {
      const s = stations.get(id);
      return el('span', {}, s ? s.name : String(id), ' ', el('span', { class: 'muted', text: id }));
    };
    $('incidents').replaceChildren(...renderIncidents(station, alerts));
    $('alerts').replaceChildren(renderAlerts(station));
    $('stations').replaceChildren(renderStations());
    $('silences').replaceChildren(renderSilences(station));
    fillChoices();
  }

  // The acknowledgements of an alert or incident: `acks` when the API gives them, else the
  // plain flag.
  function acks(item) {
    if (Array.isArray(item.acks) && item.acks.length) {
      return el('ul', { class: 'acks' }, item.acks.map((a) => el('li', {},
        el('strong', { text: a.by || '' }), ' · ', a.bureau || '', ' · ', bj(a.at),
        a.comment ? '：' + a.comment : '')));
    }
    return item.acknowledged
      ? el('span', { class: 'ok', text: '已确认 Acknowledged' })
      : el('span', { class: 'muted', text: '未确认 Not acknowledged' });
  }

  // Whether the logged-in bureau has acknowledged it already (the operator may always add one).
  function ackedByMe(item) {
    return who && who.role === 'bureau' && Array.isArray(item.acks)
      && item.acks.some((a) => a.bureau === who.bureau);
  }

  function ackButton(kind, item, what) {
    if (ackedByMe(item)) return null;
    const b = el('button', { type: 'button', class: 'small ack', text: '确认 Acknowledge',
      'data-kind': kind, 'data-id': item.id });
    b.addEventListener('click', () => openAck(kind, item.id, what));
    return b;
  }

  function renderIncidents(station, alerts) {
    const open = view.incidents.filter((i) => i.state === 'open');
    const ended = view.incidents.filter((i) => i.state !== 'open');
    const out = [];
    if (!open.length) out.push(el('p', { class: 'empty', text: '没有进行中的事件 No open incident' }));
    for (const inc of open) {
      const what = label(PARAMS, inc.param) + ' · ' + stationName(inc.origin);
      out.push(el('div', { class: 'incident level-' + inc.level + '-edge', 'data-id': inc.id },
        el('div', { class: 'incident-head' },
          level(inc.level),
          el('strong', {}, label(PARAMS, inc.param), ' · 起点 Origin ', station(inc.origin)),
          el('span', {}, '河流 River ', inc.river),
          el('span', {}, '开始 Since ', bj(inc.since)),
          el('span', {}, '峰值 Peak ', number(inc.peak_value), ' @ ', station(inc.peak_station)),
          el('span', { class: 'muted', text: inc.id })),
        el('div', {}, '确认 Acknowledgements: ', acks(inc), ' ', ackButton('incident', inc, what)),
        timeline(inc, station, alerts)));
    }
    if (ended.length) {
      out.push(el('details', {},
        el('summary', { text: '最近结束的事件 Recently ended (' + ended.length + ')' }),
        table(['级别 Level', '参数 Parameter', '起点 Origin', '开始 Since', '结束 Ended', '站点 Stations'],
          ended.map((i) => el('tr', {},
            el('td', {}, level(i.level)), el('td', { text: label(PARAMS, i.param) }),
            el('td', {}, station(i.origin)), el('td', { text: bj(i.since) }),
            el('td', { text: bj(i.updated) }),
            el('td', {}, (i.stations || []).map((s, n) => [n ? ', ' : '', station(s)])))))));
    }
    return out;
  }

  // A station's name for plain-text uses (the incident named in the acknowledgement panel).
  function stationName(id) {
    const s = view.stations.find((x) => x.id === id);
    return s ? s.name : String(id);
  }

  // The incident's events in time order: the first exceedance, its alerts, the expected
  // arrivals downstream and what became of them, and the latest event with the peak.
  function timeline(inc, station, alerts) {
    const rows = [{ t: inc.since, s: inc.origin, what: '首次超标 First exceeding reading · ' + label(PARAMS, inc.param) }];
    for (const id of inc.alerts || []) {
      const a = alerts.get(id);
      if (!a) continue;
      rows.push({ t: a.since, s: a.station, what: '告警 Alert · ' + label(RULES, a.rule)
        + (a.param ? ' · ' + label(PARAMS, a.param) : '') + ' (最新值 latest value)', v: a.value, l: a.level });
    }
    for (const r of inc.arrivals || []) {
      rows.push({ t: r.earliest, s: r.station, what: '预计到达 Expected arrival ' + bj(r.earliest) + ' – '
        + bj(r.latest) + ' · ' + label(ARRIVAL, r.state) });
    }
    rows.push({ t: inc.updated, s: inc.peak_station, what: label(EVENTS, inc.last_event) + ' · 峰值 peak',
      v: inc.peak_value, l: inc.level });
    rows.sort((a, b) => new Date(a.t) - new Date(b.t));
    return table(['时间 Time (UTC+8)', '站点 Station', '事件 Event', '数值 Value', '级别 Level'],
      rows.map((r) => el('tr', {},
        el('td', { text: bj(r.t) }), el('td', {}, station(r.s)), el('td', { text: r.what }),
        el('td', { class: 'num', text: r.v === undefined ? '' : number(r.v) }),
        el('td', {}, r.l ? level(r.l) : ''))));
  }

  function renderAlerts(station) {
    if (!view.alerts.length) return el('p', { class: 'empty', text: '没有告警 No firing alert' });
    const order = ['red', 'orange', 'yellow', 'blue', 'data'];
    const sorted = [...view.alerts].sort((a, b) => order.indexOf(a.level) - order.indexOf(b.level)
      || String(a.since).localeCompare(String(b.since)));
    return table(['级别 Level', '站点 Station', '规则 Rule', '参数 Parameter', '数值 Value',
      '开始 Since (UTC+8)', '更新 Updated', '确认 Acknowledgement', ''],
    sorted.map((a) => el('tr', { 'data-id': a.id },
      el('td', {}, level(a.level)), el('td', {}, station(a.station)),
      el('td', { text: label(RULES, a.rule) }), el('td', { text: a.param ? label(PARAMS, a.param) : '—' }),
      el('td', { class: 'num', text: number(a.value) }), el('td', { text: bj(a.since) }),
      el('td', { text: bj(a.updated) }), el('td', {}, acks(a)),
      el('td', {}, ackButton('alert', a, label(RULES, a.rule) + ' · ' + stationName(a.station))))));
  }

  // The worst QC flag among a station's values, with the parameters that have it.
  function qcState(qc) {
    const entries = Object.entries(qc || {});
    for (const flag of [4, 3]) {
      const params = entries.filter(([, f]) => f === flag).map(([p]) => label(PARAMS, p));
      if (params.length) return el('span', { class: 'qc-' + flag, text: QC[flag] + '：' + params.join('，') });
    }
    if (entries.some(([, f]) => f === 1)) return el('span', { text: QC[1] });
    return el('span', { class: 'muted', text: '—' });
  }

  function renderStations() {
    const offline = new Set(view.alerts.filter((a) => a.rule === 'offline').map((a) => a.station));
    return table(['站点 Station', '河流 River', '所属 City', '最近读数 Last reading (UTC+8)',
      '类别 / 目标 Class / target', '质控 QC', '数值 Values', '状态 Status', '告警 Alerts'],
    view.stations.map((s) => {
      const worse = typeof s.class === 'number' && s.class > s.target_class;
      const status = offline.has(s.id)
        ? el('span', { class: 'offline', text: '离线 Offline' })
        : s.last_reading
          ? el('span', { class: 'online', text: '在线 Online' })
          : el('span', { class: 'muted', text: '无数据 No data' });
      const values = Object.entries(s.values || {}).map(([p, v], n) => el('span',
        { class: 'qc-' + ((s.qc || {})[p] || 2) }, n ? '，' : '', label(PARAMS, p), ' ', number(v)));
      return el('tr', { 'data-id': s.id },
        el('td', {}, s.name, ' ', el('span', { class: 'muted', text: s.id }), s.boundary ? ' · 界面 boundary' : ''),
        el('td', { text: s.river }), el('td', { text: s.city }),
        el('td', { text: bj(s.last_reading) }),
        el('td', { class: worse ? 'worse' : '' }, (CLASSES[s.class] || '—') + ' / ' + (CLASSES[s.target_class] || '—')),
        el('td', {}, qcState(s.qc)), el('td', {}, values), el('td', {}, status),
        el('td', { class: 'num', text: (s.alerts || []).length }));
    }));
  }

  function renderSilences(station) {
    if (!view.silences.length) return el('p', { class: 'empty', text: '没有静默 No silence' });
    const now = Date.now();
    return table(['匹配 Matches', '级别 Levels', '开始 Starts (UTC+8)', '截止 Until', '创建人 Author',
      '原因 Reason', '状态 State', ''],
    view.silences.map((s) => {
      const active = s.active !== undefined ? s.active : new Date(s.until).getTime() > now;
      const matches = [];
      if (s.station) matches.push(station(s.station));
      if (s.rule) matches.push(label(RULES, s.rule));
      if (s.param) matches.push(label(PARAMS, s.param));
      let end = null;
      if (active) {
        end = el('button', { type: 'button', class: 'small secondary end', text: '结束 End', 'data-id': s.id });
        end.addEventListener('click', () => endSilence(s.id));
      }
      return el('tr', { 'data-id': s.id },
        el('td', {}, matches.length ? matches.map((m, n) => [n ? ' · ' : '', m]) : '—'),
        el('td', {}, Array.isArray(s.levels) && s.levels.length ? s.levels.map((l) => [level(l), ' ']) : '默认 default'),
        el('td', { text: bj(s.starts) }), el('td', { text: bj(s.until) }),
        el('td', { text: s.author || '—' }), el('td', { class: 'reason', text: s.reason || '' }),
        el('td', { text: active ? '生效 Active' : '已结束 Ended' }), el('td', {}, end));
    }));
  }

  // The choices of the forms: bureaus (for the operator's acknowledgements) and stations.
  function fillChoices() {
    const cities = [...new Set(view.stations.map((s) => s.city))].sort();
    $('bureaus').replaceChildren(...cities.map((c) => el('option', { value: c })));
    if (!$('ack-bureau').value && cities.length) $('ack-bureau').value = cities[0];
    const select = $('silence-station');
    const chosen = select.value;
    select.replaceChildren(el('option', { value: '', text: '（任意 any）' }),
      ...view.stations.map((s) => el('option', { value: s.id, text: s.name + ' ' + s.id })));
    select.value = chosen;
  }

  function staticChoices() {
    $('silence-rule').append(...Object.entries(RULES).map(([k, v]) => el('option', { value: k, text: v })));
    $('silence-param').append(...Object.entries(PARAMS).map(([k, v]) => el('option', { value: k, text: v })));
    $('silence-levels').append(...Object.entries(LEVELS).map(([k, v]) => el('label', {},
      el('input', { type: 'checkbox', value: k, 'data-level': k }), ' ', v)));
  }

  // ---- actions ---------------------------------------------------------------------------

  function openAck(kind, id, what) {
    ackTarget = { kind, id };
    $('ack-target').textContent = (kind === 'incident' ? '事件 Incident ' : '告警 Alert ') + id + ' · ' + what;
    $('ack-panel').hidden = false;
    $('ack-panel').scrollIntoView({ block: 'nearest' });
    $('ack-by').focus();
  }

  async function submitAck(e) {
    e.preventDefault();
    if (!ackTarget) return;
    const by = $('ack-by').value.trim();
    const body = { by, comment: $('ack-comment').value.trim() };
    if (who && who.role !== 'bureau' && $('ack-bureau').value.trim()) body.bureau = $('ack-bureau').value.trim();
    const path = '/api/v1/' + (ackTarget.kind === 'incident' ? 'incidents/' : 'alerts/')
      + encodeURIComponent(ackTarget.id) + '/ack';
    let r;
    try { r = await api('POST', path, body); } catch (err) {
      setStatus('error', '无法连接 Cannot reach riverwatch: ' + err.message);
      return;
    }
    if (!r.ok) {
      setStatus('error', '确认失败 Not acknowledged: ' + why(r));
      return;
    }
    sessionStorage.setItem(NAME_KEY, by);
    setStatus('ok', '已确认 Acknowledged: ' + ackTarget.id);
    ackTarget = null;
    $('ack-comment').value = '';
    $('ack-panel').hidden = true;
    refresh();
  }

  async function submitSilence(e) {
    e.preventDefault();
    const body = {
      duration: $('silence-duration').value.trim(),
      author: $('silence-author').value.trim(),
      reason: $('silence-reason').value.trim(),
    };
    for (const k of ['station', 'rule', 'param']) {
      const v = $('silence-' + k).value;
      if (v) body[k] = v;
    }
    const levels = [...document.querySelectorAll('#silence-levels input:checked')].map((i) => i.value);
    if (levels.length) body.levels = levels;
    let r;
    try { r = await api('POST', '/api/v1/silences', body); } catch (err) {
      setStatus('error', '无法连接 Cannot reach riverwatch: ' + err.message);
      return;
    }
    if (!r.ok) {
      setStatus('error', '静默未创建 Silence refused: ' + why(r));
      return;
    }
    sessionStorage.setItem(NAME_KEY, body.author);
    setStatus('ok', '已创建静默 Silence created: ' + (r.data && r.data.id));
    $('silence-reason').value = '';
    refresh();
  }

  async function endSilence(id) {
    let r;
    try { r = await api('DELETE', '/api/v1/silences/' + encodeURIComponent(id)); } catch (err) {
      setStatus('error', '无法连接 Cannot reach riverwatch: ' + err.message);
      return;
    }
    if (!r.ok) {
      setStatus('error', '静默未结束 Silence not ended: ' + why(r));
      return;
    }
    setStatus('ok', '静默已结束 Silence ended: ' + id);
    refresh();
  }

  // ---- start ---------------------------------------------------------------------------

  function start() {
    staticChoices();
    $('login-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const t = $('token').value.trim();
      if (!t) return;
      $('login-error').textContent = '';
      const failed = await login(t);
      $('token').value = '';
      if (failed) $('login-error').textContent = failed;
    });
    $('logout').addEventListener('click', () => logout(''));
    $('ack-form').addEventListener('submit', submitAck);
    $('ack-cancel').addEventListener('click', () => { ackTarget = null; $('ack-panel').hidden = true; });
    $('silence-form').addEventListener('submit', submitSilence);
    // A reload within the tab keeps the login; a new tab asks again.
    if (token()) {
      login(token()).then((failed) => { if (failed) $('login-error').textContent = failed; });
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
