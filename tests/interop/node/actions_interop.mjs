// The device management actions of lwm2md driven through its REST API, against LwM2M clients
// on the npm coap package (test_device.mjs): what an application calls (POST
// /api/v1/endpoints/NAME/actions/ACTION), what it receives (the answer, the events of
// /api/v1/events), and what the device saw on the wire (its JSON-line request log).
//
//   node --test-reporter=spec actions_interop.mjs
// Run by tests/interop/actions_test.sh, which starts lwm2md and gives:
//   LWM2MD_HTTP_PORT, LWM2MD_COAP_PORT   where lwm2md listens (127.0.0.1)
//   API_TOKEN_FILE                       a read-write API token
//   fd 3 and stdin                       the restart channel: the driver writes "restart" on
//                                        fd 3; the script restarts lwm2md on the same data
//                                        directory and ports and answers "ready HTTP COAP".
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
let httpPort = Number(process.env.LWM2MD_HTTP_PORT);
const coapPort = Number(process.env.LWM2MD_COAP_PORT);
const token = fs.readFileSync(process.env.API_TOKEN_FILE, 'utf8').trim();

const TEXT = 0; const LINK = 40; const OPAQUE = 42; const SENML_JSON = 110; const SENML_CBOR = 112;
const TLV = 11542; const LWM2M_JSON = 11543;
const kNoResponse = 'device did not respond to the request';
// lwm2m.queue_awake_window_s of this run (actions_test.sh sets 2 s): lwm2md counts a
// queue-mode device as awake this long after its last message, then as asleep.
const kAwakeWindowMs = 2000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves with the first value of probe() that is not undefined; rejects after timeoutMs.
// subscribe(fn) has fn called whenever probe's answer may have changed and returns the
// function that unsubscribes it.
function waitUntil(probe, subscribe, timeoutMs, describe) {
  return new Promise((resolve, reject) => {
    const first = probe();
    if (first !== undefined) { resolve(first); return; }
    let unsubscribe = () => {};
    const timer = setTimeout(() => { unsubscribe(); reject(new Error(describe())); }, timeoutMs);
    unsubscribe = subscribe(() => {
      const v = probe();
      if (v !== undefined) { clearTimeout(timer); unsubscribe(); resolve(v); }
    });
  });
}

// ---- The REST API ----

async function api(method, p, body, { timeoutMs = 20000 } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
  const res = await fetch(`http://127.0.0.1:${httpPort}${p}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
}

// An action as the reference calls it: async unless options.async is false.
function action(endpoint, name, body = {}) {
  return api('POST', `/api/v1/endpoints/${endpoint}/actions/${name}`, body);
}
function syncAction(endpoint, name, body = {}) {
  return action(endpoint, name, { ...body, options: { ...(body.options ?? {}), async: false } });
}

// Asserts the 202 of an accepted async call and returns its body.
function assertAccepted(res, queued = false) {
  assert.equal(res.status, 202, res.text);
  assert.deepEqual(Object.keys(res.json).sort(), ['queued', 'requestId']);
  assert.match(res.json.requestId, /^r-/);
  assert.equal(res.json.queued, queued);
  return res.json;
}

// ---- The event stream (GET /api/v1/events) ----

class EventStream {
  constructor() {
    this.events = [];
    this.listeners = new Set();
    this.problems = [];
  }

  async connect() {
    this.abort = new AbortController();
    const res = await fetch(`http://127.0.0.1:${httpPort}/api/v1/events?type=lwm2m.data,lwm2m.asyncResult,lwm2m.error`,
      { headers: { Authorization: `Bearer ${token}` }, signal: this.abort.signal });
    assert.equal(res.status, 200, 'GET /api/v1/events');
    // The server subscribes before it sends the headers: from here on nothing is missed.
    this.reading = this.read(res.body.getReader());
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.frame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (e) {
      if (e.name !== 'AbortError') this.problems.push(`event stream: ${e.message}`);
    }
  }

  frame(text) {
    let type; let data;
    for (const line of text.split('\n')) {
      if (line.startsWith('event: ')) type = line.slice(7);
      if (line.startsWith('data: ')) data = line.slice(6);
    }
    if (type === undefined || data === undefined) return;  // a keepalive comment
    if (type === 'dropped') { this.problems.push(`event stream dropped events: ${data}`); return; }
    const frame = JSON.parse(data);
    this.events.push({ type, endpoint: frame.endpoint, time: frame.time, payload: frame.data });
    for (const l of [...this.listeners]) l();
  }

  mark() { return this.events.length; }

  since(from, type, endpoint) {
    return this.events.slice(from).filter((e) => e.type === type && e.endpoint === endpoint);
  }

  // The first event at index ≥ from of type for endpoint whose payload satisfies pred.
  waitFor(from, type, endpoint, pred = () => true, timeoutMs = 10000) {
    return this.waitForAny(from, [type], endpoint, pred, timeoutMs).then((e) => e.payload);
  }

  // The first event (type, endpoint, time, payload) at index ≥ from of one of types for
  // endpoint whose payload satisfies pred.
  waitForAny(from, types, endpoint, pred = () => true, timeoutMs = 10000) {
    return waitUntil(
      () => this.events.slice(from).find((e) => types.includes(e.type) && e.endpoint === endpoint &&
        pred(e.payload)),
      (fn) => { this.listeners.add(fn); return () => this.listeners.delete(fn); },
      timeoutMs,
      () => `no ${types.join(' or ')} event for ${endpoint} in ${timeoutMs} ms; events since:\n` +
        this.events.slice(from).map((e) => `${e.type} ${e.endpoint} ${JSON.stringify(e.payload)}`).join('\n'));
  }

  close() { this.abort?.abort(); }
}

// ---- Test devices (test_device.mjs, one process each) ----

class Device {
  constructor(name, args) {
    this.name = name;
    this.events = [];
    this.listeners = new Set();
    this.stderr = '';
    this.proc = spawn(process.execPath, [path.join(here, 'test_device.mjs'), '--server',
      `127.0.0.1:${coapPort}`, '--endpoint', name, '--lifetime', '3600', ...args],
    { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      let e;
      try { e = JSON.parse(line); } catch { e = { event: 'unparsed', line }; }
      this.events.push(e);
      for (const l of [...this.listeners]) l();
    });
    this.exited = new Promise((r) => this.proc.on('exit', r));
  }

  async start() {
    const e = await this.waitFor(0, (x) => x.event === 'registered' || x.event === 'register-failed');
    assert.equal(e.event, 'registered', `${this.name} did not register: ${JSON.stringify(e)}`);
    return this;
  }

  mark() { return this.events.length; }

  since(from, event) { return this.events.slice(from).filter((e) => e.event === event); }

  // Requests the device received since from (retransmissions left out).
  requests(from) { return this.since(from, 'request').filter((e) => !e.duplicate); }

  waitFor(from, pred, timeoutMs = 10000) {
    return waitUntil(
      () => this.events.slice(from).find(pred),
      (fn) => { this.listeners.add(fn); return () => this.listeners.delete(fn); },
      timeoutMs,
      () => `${this.name}: no matching device event in ${timeoutMs} ms; since then:\n` +
        this.events.slice(from).map((e) => JSON.stringify(e)).join('\n') + `\nstderr: ${this.stderr}`);
  }

  // Waits until n events since from satisfy pred; returns them.
  waitCount(from, pred, n, timeoutMs = 10000) {
    return waitUntil(
      () => { const m = this.events.slice(from).filter(pred); return m.length >= n ? m : undefined; },
      (fn) => { this.listeners.add(fn); return () => this.listeners.delete(fn); },
      timeoutMs,
      () => `${this.name}: fewer than ${n} matching device events in ${timeoutMs} ms; since then:\n` +
        this.events.slice(from).map((e) => JSON.stringify(e)).join('\n'));
  }

  command(cmd) { this.proc.stdin.write(`${JSON.stringify(cmd)}\n`); }

  // Runs a command and waits for the event that says it is done.
  async run(cmd, doneEvent) {
    const from = this.mark();
    this.command(cmd);
    const e = await this.waitFor(from, (x) => x.event === doneEvent || (x.event === 'error' && x.what === 'command'));
    assert.equal(e.event, doneEvent, `${this.name} ${JSON.stringify(cmd)}: ${JSON.stringify(e)}`);
    return e;
  }

  async objects() { return (await this.run({ cmd: 'dump' }, 'state')).objects; }

  async stop() {
    this.command({ cmd: 'exit' });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

// The requests a device received since from, once it has answered n of them (its log and
// lwm2md's answer to the API travel different ways: the answer may come first).
async function seen(dev, from, n = 1) {
  await dev.waitCount(from, (e) => e.event === 'response', n);
  return dev.requests(from);
}

// ---- Restarting lwm2md (done by actions_test.sh through fd 3 and stdin) ----

const control = readline.createInterface({ input: process.stdin });
const controlLines = [];
const controlListeners = new Set();
control.on('line', (line) => { controlLines.push(line); for (const l of [...controlListeners]) l(); });

async function restartServer() {
  events.close();
  const from = controlLines.length;
  fs.writeSync(3, 'restart\n');
  const line = await waitUntil(() => controlLines[from],
    (fn) => { controlListeners.add(fn); return () => controlListeners.delete(fn); },
    20000, () => 'lwm2md was not restarted within 20 s');
  const m = /^ready (\d+) (\d+)$/.exec(line);
  assert.ok(m, `restart answer: ${line}`);
  httpPort = Number(m[1]);
  assert.equal(Number(m[2]), coapPort, 'lwm2md came back on another CoAP port');
  await events.connect();
}

// ---- Fixtures ----

const events = new EventStream();
let d11;  // LwM2M 1.1, binding U
let d10;  // LwM2M 1.0, binding U
let dq;   // LwM2M 1.1, binding U with queue mode

test.before(async () => {
  await events.connect();
  d11 = new Device('act-11', ['--version', '1.1', '--binding', 'U']);
  d10 = new Device('act-10', ['--version', '1.0', '--binding', 'U']);
  dq = new Device('act-q', ['--version', '1.1', '--binding', 'UQ']);
  await Promise.all([d11.start(), d10.start(), dq.start()]);
});

test.after(async () => {
  await Promise.all([d11, d10, dq].filter(Boolean).map((d) => d.stop()));
  events.close();
  control.close();
  process.stdin.destroy();
  try { fs.closeSync(3); } catch { /* not run by actions_test.sh */ }
});

// Problems of the event stream and the devices since the last test.
let problemsChecked = 0;
const errorsChecked = new Map();
test.afterEach(() => {
  const problems = events.problems.slice(problemsChecked);
  problemsChecked = events.problems.length;
  assert.deepEqual(problems, [], 'the event stream had problems');
  for (const d of [d11, d10, dq].filter(Boolean)) {
    const errors = d.since(errorsChecked.get(d) ?? 0, 'error');
    errorsChecked.set(d, d.mark());
    assert.deepEqual(errors, [], `${d.name} reported errors`);
  }
});

// The values the test device starts with (device/model.mjs), as lwm2md names them.
const kDevice = {
  manufacturer: 'lwm2md interop',
  model_number: 'npm-coap test device',
  serial_number: 'SN-0001',
  firmware_version: '1.0.0',
  available_power_sources: { 0: 1, 1: 5 },
  battery_level: 87,
  memory_free: 15360,
  error_code: { 0: 0 },
  utc_offset: '+01:00',
  timezone: 'Europe/Berlin',
  supported_binding_and_modes: 'UQ',
};
const kTestObject = {
  string_value: 'initial value',
  integer_value: 64,
  float_value: 3.14159,
  boolean_value: true,
  opaque_value: Buffer.from('0123456789abcdef', 'hex').toString('base64'),
  time_value: '2015-05-04T05:00:00Z',
  objlink_value: '3:0',
  multiple_string_value: { 0: 'initial value', 1: 'second value' },
  multiple_integer_value: { 0: 64, 1: -12345 },
  multiple_float_value: { 0: 3.14159, 1: -0.5 },
  multiple_boolean_value: { 0: true, 1: false },
  multiple_opaque_value: { 0: 'ASNFZ4mrze8=', 1: '/wA=' },
  multiple_time_value: { 0: '2015-05-04T05:00:00Z', 1: '2023-11-14T22:13:20Z' },
  multiple_objlink_value: { 0: '3:0', 1: '1:0' },
};
const kTestObjectName = 'lwm2m_v1_0_test_object';

// ---- 1. Read ----

test('sync read of /3/0 answers the data event object, names translated', async () => {
  const from = d11.mark();
  const res = await syncAction(d11.name, 'read', { paths: ['3/0'] });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(Object.keys(res.json).sort(), ['data', 'source']);
  assert.equal(res.json.source, 'read');
  const device = res.json.data.device['0'];
  assert.match(device.current_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  delete device.current_time;
  assert.deepEqual(res.json.data, { device: { 0: kDevice } });
  const [get] = await seen(d11, from);
  assert.equal(get.method, 'GET');
  assert.equal(get.path, '/3/0');
  assert.equal(get.accept, TLV, 'a read asks for TLV by default');
});

test('read of several paths on a 1.0 device: one GET per path', async () => {
  const from = d10.mark();
  const res = await syncAction(d10.name, 'read', { paths: ['3/0/0', '3/0/9', '3441/0/110'] });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { source: 'read', data: {
    device: { 0: { manufacturer: 'lwm2md interop', battery_level: 87 } },
    [kTestObjectName]: { 0: { string_value: 'initial value' } },
  } });
  const requests = await seen(d10, from, 3);
  assert.deepEqual(requests.map((r) => `${r.method} ${r.path}`), ['GET /3/0/0', 'GET /3/0/9', 'GET /3441/0/110']);
});

test('every encoding: the device is asked for it and the values come back equal', async () => {
  const tlv = await syncAction(d11.name, 'read', { paths: ['3441/0'] });
  assert.equal(tlv.status, 200, tlv.text);
  assert.deepEqual(tlv.json.data, { [kTestObjectName]: { 0: kTestObject } });
  for (const [encoding, accept] of [['senml-json', SENML_JSON], ['senml-cbor', SENML_CBOR], ['json', LWM2M_JSON]]) {
    const from = d11.mark();
    const res = await syncAction(d11.name, 'read', { paths: ['3441/0'], options: { encoding } });
    assert.equal(res.status, 200, `${encoding}: ${res.text}`);
    assert.deepEqual(res.json, tlv.json, `${encoding} read differs from the TLV read`);
    const requests = await seen(d11, from);
    assert.equal(requests.length, 1, encoding);
    assert.equal(requests[0].accept, accept, `${encoding}: Accept`);
  }
  for (const [encoding, accept, p, expected] of [
    ['text', TEXT, '3/0/0', { device: { 0: { manufacturer: 'lwm2md interop' } } }],
    ['text', TEXT, '3441/0/130', { [kTestObjectName]: { 0: { float_value: 3.14159 } } }],
    ['text', TEXT, '3441/0/160', { [kTestObjectName]: { 0: { time_value: '2015-05-04T05:00:00Z' } } }],
    ['opaque', OPAQUE, '3441/0/150', { [kTestObjectName]: { 0: { opaque_value: kTestObject.opaque_value } } }],
  ]) {
    const from = d11.mark();
    const res = await syncAction(d11.name, 'read', { paths: [p], options: { encoding } });
    assert.equal(res.status, 200, `${encoding} ${p}: ${res.text}`);
    assert.deepEqual(res.json, { source: 'read', data: expected }, `${encoding} ${p}`);
    const requests = await seen(d11, from);
    assert.equal(requests.length, 1);
    assert.equal(requests[0].accept, accept, `${encoding} ${p}: Accept`);
  }
});

test('encodings a device or path cannot take are refused with 422', async () => {
  const from10 = d10.mark();
  const senml = await syncAction(d10.name, 'read', { paths: ['3/0'], options: { encoding: 'senml-json' } });
  assert.equal(senml.status, 422, senml.text);
  assert.match(senml.json.error, /senml-json/);
  const text = await syncAction(d11.name, 'read', { paths: ['3/0'], options: { encoding: 'text' } });
  assert.equal(text.status, 422, text.text);
  assert.match(text.json.error, /^text: /);
  const opaque = await syncAction(d11.name, 'read', { paths: ['3/0/0'], options: { encoding: 'opaque' } });
  assert.equal(opaque.status, 422, opaque.text);
  assert.deepEqual(d10.requests(from10), [], 'a refused call sends nothing');
});

// ---- 2. Composite ----

test('composite read: one FETCH on a 1.1 device, one GET per path on a 1.0 device', async () => {
  const paths = ['3/0/0', '3/0/9', '3441/0/120'];
  const expected = {
    device: { 0: { manufacturer: 'lwm2md interop', battery_level: 87 } },
    [kTestObjectName]: { 0: { integer_value: 64 } },
  };
  for (const [encoding, format] of [[undefined, SENML_CBOR], ['senml-json', SENML_JSON]]) {
    const from = d11.mark();
    const res = await syncAction(d11.name, 'read', { paths, options: { composite: true, encoding } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.data, expected);
    const requests = await seen(d11, from);
    assert.equal(requests.length, 1, JSON.stringify(requests));
    assert.equal(requests[0].method, 'FETCH');
    assert.equal(requests[0].path, '/');
    assert.equal(requests[0].contentFormat, format);
    assert.equal(requests[0].accept, format);
  }
  const from = d10.mark();
  const res = await syncAction(d10.name, 'read', { paths, options: { composite: true } });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json.data, expected);
  assert.deepEqual((await seen(d10, from, 3)).map((r) => `${r.method} ${r.path}`), ['GET /3/0/0', 'GET /3/0/9', 'GET /3441/0/120']);
});

// ---- 3. Write ----

test('write a resource: PUT with TLV, the device holds the value', async () => {
  const from = d11.mark();
  const res = await syncAction(d11.name, 'write', { path: '3/0/15', data: 'UTC' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { source: 'write', path: '3/0/15', success: true });
  const [put] = await seen(d11, from);
  assert.equal(put.method, 'PUT');
  assert.equal(put.path, '/3/0/15');
  assert.equal(put.contentFormat, TLV);
  assert.equal((await d11.objects())['3']['0']['15'], 'UTC');
  // The reference's example with text encoding.
  const text = await syncAction(d11.name, 'write', { path: '3/0/14', data: '+04:00', options: { encoding: 'text' } });
  assert.equal(text.status, 200, text.text);
  assert.equal((await d11.objects())['3']['0']['14'], '+04:00');
});

test('write an instance: POST with TLV (partial update)', async () => {
  const from = d11.mark();
  const res = await syncAction(d11.name, 'write', { path: '3441/0', data: { 110: 'x', 120: 5 } });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { source: 'write', path: '3441/0', success: true });
  const requests = await seen(d11, from);
  assert.deepEqual(requests.map((r) => `${r.method} ${r.path} ${r.contentFormat}`), [`POST /3441/0 ${TLV}`]);
  const values = (await d11.objects())['3441']['0'];
  assert.equal(values['110'], 'x');
  assert.equal(values['120'], 5);
  assert.equal(values['130'], 3.14159, 'a partial update leaves the other resources');
});

test('writeMulti: one instance write per instance with TLV; one iPATCH when composite on 1.1', async () => {
  let from = d10.mark();
  const res = await syncAction(d10.name, 'writeMulti', { data: { 3: { 0: { 14: '+02:00', 15: 'CET' } }, 3441: { 0: { 110: 'multi' } } } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.success, true);
  assert.deepEqual((await seen(d10, from, 2)).map((r) => `${r.method} ${r.path} ${r.contentFormat}`),
    [`POST /3/0 ${TLV}`, `POST /3441/0 ${TLV}`]);
  let objects = await d10.objects();
  assert.equal(objects['3']['0']['14'], '+02:00');
  assert.equal(objects['3']['0']['15'], 'CET');
  assert.equal(objects['3441']['0']['110'], 'multi');

  from = d11.mark();
  const composite = await syncAction(d11.name, 'writeMulti', {
    data: { 3: { 0: { 15: 'EST' } }, 3441: { 0: { 120: 42, 140: false } } }, options: { composite: true } });
  assert.equal(composite.status, 200, composite.text);
  assert.equal(composite.json.success, true);
  assert.deepEqual((await seen(d11, from)).map((r) => `${r.method} ${r.path} ${r.contentFormat}`), [`iPATCH / ${SENML_CBOR}`]);
  objects = await d11.objects();
  assert.equal(objects['3']['0']['15'], 'EST');
  assert.equal(objects['3441']['0']['120'], 42);
  assert.equal(objects['3441']['0']['140'], false);
});

test('write of a resource the model does not define: events when async, 422 when sync', async () => {
  const from = d11.mark();
  const mark = events.mark();
  const context = { op: 'write', msgId: '1234' };
  assertAccepted(await action(d11.name, 'write', { path: '3/0/100', data: 'x', options: { context } }));
  const error = 'tlv: resource definition not found';
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.asyncResult', d11.name),
    { context, error, path: '3/0/100', source: 'write', success: false });
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.error', d11.name),
    { source: 'write', error, context, path: '3/0/100' });
  const sync = await syncAction(d11.name, 'write', { path: '3/0/100', data: 'x' });
  assert.equal(sync.status, 422, sync.text);
  assert.equal(sync.json.error, error);
  assert.deepEqual(d11.requests(from), [], 'nothing was sent to the device');
});

// ---- 4. Execute, create, delete, discover, write-attributes ----

test('exec and execWithArgs: the device executes with the TS argument list', async () => {
  let from = d11.mark();
  const res = await syncAction(d11.name, 'exec', { path: '3/0/4' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { source: 'exec', path: '3/0/4', success: true });
  let executed = await d11.waitFor(from, (e) => e.event === 'executed');
  assert.deepEqual([executed.path, executed.args], ['/3/0/4', '']);

  from = d11.mark();
  const withArgs = await syncAction(d11.name, 'execWithArgs', { path: '3441/0/3', args: { 0: 'abc123', 1: null } });
  assert.equal(withArgs.status, 200, withArgs.text);
  executed = await d11.waitFor(from, (e) => e.event === 'executed');
  assert.deepEqual([executed.path, executed.args], ['/3441/0/3', "0='abc123',1"]);
  const [post] = await seen(d11, from);
  assert.equal(post.method, 'POST');
  assert.equal(post.contentFormat, TEXT);
  assert.deepEqual((await d11.objects())['3441']['0']['4'], { 0: 'abc123', 1: '' });
});

test('create 3441/5 and delete it', async () => {
  let from = d11.mark();
  const created = await syncAction(d11.name, 'create', { path: '3441/5', data: { 110: 'created', 120: 7 } });
  assert.equal(created.status, 200, created.text);
  assert.equal(created.json.source, 'create');
  assert.equal(created.json.success, true);
  assert.equal((await d11.waitFor(from, (e) => e.event === 'created')).path, '/3441/5');
  const [post] = await seen(d11, from);
  assert.deepEqual([post.method, post.path, post.contentFormat], ['POST', '/3441', TLV]);
  let objects = await d11.objects();
  assert.equal(objects['3441']['5']['110'], 'created');
  assert.equal(objects['3441']['5']['120'], 7);

  from = d11.mark();
  const deleted = await syncAction(d11.name, 'delete', { path: '3441/5' });
  assert.equal(deleted.status, 200, deleted.text);
  assert.deepEqual(deleted.json, { source: 'delete', path: '3441/5', success: true });
  assert.equal((await d11.waitFor(from, (e) => e.event === 'deleted')).path, '/3441/5');
  objects = await d11.objects();
  assert.equal(objects['3441']['5'], undefined);
});

test('discover 3/0 returns the device links', async () => {
  const from = d11.mark();
  const res = await syncAction(d11.name, 'discover', { path: '3/0' });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.source, 'discover');
  assert.equal(res.json.path, '3/0');
  assert.ok(res.json.links.includes('</3/0/9>'), res.json.links);
  const [get] = await seen(d11, from);
  assert.deepEqual([get.method, get.path, get.accept], ['GET', '/3/0', LINK]);
});

test('writeAttributes: PUT with pmin and pmax as Uri-Query', async () => {
  const from = d11.mark();
  const res = await syncAction(d11.name, 'writeAttributes', { path: '3/0/13', attributes: { pmin: 10, pmax: 60 } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.success, true);
  const [put] = await seen(d11, from);
  assert.deepEqual([put.method, put.path, put.payloadHex], ['PUT', '/3/0/13', '']);
  assert.deepEqual(put.query, ['pmin=10', 'pmax=60']);
  assert.equal((await d11.waitFor(from, (e) => e.event === 'response')).code, '2.04');
});

// ---- 5. Partial failure ----

test('a read that fails in part: 502 partial success, and the reference asyncResult', async () => {
  const sync = await syncAction(d11.name, 'read', { paths: ['3/0/9', '3/0/100'] });
  assert.equal(sync.status, 502, sync.text);
  assert.equal(sync.json.error, 'partial success');
  assert.deepEqual(sync.json.partialErrors, { '3/0/100': 'coap: not found' });

  const mark = events.mark();
  const context = { op: 'read', msgId: '1234' };
  assertAccepted(await action(d11.name, 'read', { paths: ['3/0/9', '3/0/100'], options: { context } }));
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.asyncResult', d11.name), {
    context, error: 'partial success', partialErrors: { '3/0/100': 'coap: not found' },
    path: '3/0/9,3/0/100', source: 'read', success: false,
  });
  // What was read still arrives, and the failure as an error event.
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.data', d11.name),
    { source: 'read', data: { device: { 0: { battery_level: 87 } } }, context });
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.error', d11.name), {
    source: 'read', error: 'partial success', context, path: '3/0/9,3/0/100',
    partialErrors: { '3/0/100': 'coap: not found' },
  });
});

// ---- 7. Async calls ----

test('async read: 202, then a data event and, with a context only, an asyncResult', async () => {
  const mark = events.mark();
  assertAccepted(await action(d11.name, 'read', { paths: ['3/0/9'] }));
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.data', d11.name),
    { source: 'read', data: { device: { 0: { battery_level: 87 } } } });
  const context = { reply: 'abc123' };
  assertAccepted(await action(d11.name, 'read', { paths: ['3/0/9'], options: { context } }));
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.data', d11.name, (p) => p.context !== undefined),
    { source: 'read', data: { device: { 0: { battery_level: 87 } } }, context });
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.asyncResult', d11.name),
    { context, path: '3/0/9', source: 'read', success: true });
  // The calls ran in order on one device: an asyncResult of the first would have come
  // before the second's.
  assert.equal(events.since(mark, 'lwm2m.asyncResult', d11.name).length, 1, 'an asyncResult without a context');
  assert.equal(events.since(mark, 'lwm2m.error', d11.name).length, 0);
});

// ---- 8. Observe ----

test('observe, notifications, lastKnown, observeCancel', async () => {
  const from = d11.mark();
  const res = await syncAction(d11.name, 'observe', { paths: ['3/0/9'] });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.source, 'observe');
  assert.deepEqual(res.json.data, { device: { 0: { battery_level: 87 } } });
  assert.deepEqual(Object.keys(res.json.tokens), ['3/0/9']);
  const tok = res.json.tokens['3/0/9'];
  assert.match(tok, /^[0-9a-f]+$/);
  const observed = await d11.waitFor(from, (e) => e.event === 'observed');
  assert.equal(BigInt(`0x${observed.token}`), BigInt(`0x${tok}`), 'the token the device saw');
  let cancelled = false;
  try {
    await notificationsAndCancel(tok);
    cancelled = true;
  } finally {
    if (!cancelled) await leaveNoObservation(tok);
  }
  const unknown = await action(d11.name, 'observeCancel', { token: '0123456789abcdef' });
  assert.equal(unknown.status, 404, unknown.text);
  const again = await action(d11.name, 'observeCancel', { token: tok });
  assert.equal(again.status, 404, 'a cancelled token is gone');
});

// After a failure in the middle of a test: later tests read and set what it observed, which
// an observation left behind would turn into notifications.
async function leaveNoObservation(tok) {
  const from = d11.mark();
  const res = await action(d11.name, 'observeCancel', { token: tok });
  if (res.status === 202) await d11.waitFor(from, (e) => e.event === 'observe-cancelled').catch(() => {});
}

async function notificationsAndCancel(tok) {
  let mark = events.mark();
  const before = Date.now();
  await d11.run({ cmd: 'set', path: '3/0/9', value: 55 }, 'set');
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.data', d11.name),
    { source: 'notify', data: { device: { 0: { battery_level: 55 } } } });
  await d11.run({ cmd: 'set', path: '3/0/9', value: 54 }, 'set');
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.data', d11.name, (p) => p.data.device['0'].battery_level === 54),
    { source: 'notify', data: { device: { 0: { battery_level: 54 } } } });

  const known = await api('GET', `/api/v1/endpoints/${d11.name}/lastKnown`);
  assert.equal(known.status, 200, known.text);
  assert.equal(known.json['3']['0']['9'], 54);
  const stamp = Date.parse(known.json['~3']['0']['9']);
  assert.ok(stamp >= before - 1000 && stamp <= Date.now() + 1000, `~3/0/9 = ${known.json['~3']['0']['9']}`);
  const named = await api('GET', `/api/v1/endpoints/${d11.name}/lastKnown?translateIds=strings&includeUpdateTimes=false`);
  assert.equal(named.status, 200, named.text);
  assert.equal(named.json.device['0'].battery_level, 54);
  assert.equal(named.json['~device'], undefined);
  assert.equal(named.json['~3'], undefined);

  let from = d11.mark();
  assertAccepted(await action(d11.name, 'observeCancel', { token: tok }));
  const cancel = await d11.waitFor(from, (e) => e.event === 'request');
  assert.deepEqual([cancel.method, cancel.path, cancel.observe], ['GET', '/3/0/9', 1]);
  assert.equal(BigInt(`0x${cancel.token}`), BigInt(`0x${tok}`));
  await d11.waitFor(from, (e) => e.event === 'observe-cancelled');
  mark = events.mark();
  from = d11.mark();
  await d11.run({ cmd: 'set', path: '3/0/9', value: 53 }, 'set');
  await sleep(1000);  // long enough for a notification to arrive, were one sent
  assert.deepEqual(d11.since(from, 'notified'), []);
  assert.deepEqual(events.since(mark, 'lwm2m.data', d11.name), []);
}

test('composite observe on 1.1: one token, notifications of every path', async () => {
  const from = d11.mark();
  const res = await syncAction(d11.name, 'observe', { paths: ['3/0/9', '3441/0/120'], options: { composite: true } });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(Object.keys(res.json.tokens), ['composite']);
  let cancelled = false;
  try {
    await compositeNotificationsAndCancel(from, res.json.tokens.composite);
    cancelled = true;
  } finally {
    if (!cancelled) await leaveNoObservation(res.json.tokens.composite);
  }
});

async function compositeNotificationsAndCancel(from, tok) {
  const [req] = await seen(d11, from);
  assert.deepEqual([req.method, req.path, req.observe, req.contentFormat], ['FETCH', '/', 0, SENML_CBOR]);
  const mark = events.mark();
  await d11.run({ cmd: 'set', path: '3441/0/120', value: 99 }, 'set');
  const notify = await events.waitFor(mark, 'lwm2m.data', d11.name);
  assert.equal(notify.source, 'notify');
  assert.equal(notify.data[kTestObjectName]['0'].integer_value, 99);
  assert.equal(notify.data.device['0'].battery_level, (await d11.objects())['3']['0']['9']);
  const cancelFrom = d11.mark();
  assertAccepted(await action(d11.name, 'observeCancel', { token: tok }));
  const cancel = await d11.waitFor(cancelFrom, (e) => e.event === 'request');
  assert.deepEqual([cancel.method, cancel.observe], ['FETCH', 1]);
  await d11.waitFor(cancelFrom, (e) => e.event === 'observe-cancelled');
}

// ---- 11. Send ----

test('Send from the device: a data event with source send, lastKnown updated', async () => {
  await d11.run({ cmd: 'set', path: '3/0/9', value: 33 }, 'set');
  const mark = events.mark();
  const before = Date.now();
  const sent = await d11.run({ cmd: 'send', paths: ['/3/0/9'] }, 'sent');
  assert.equal(sent.code, '2.04');
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.data', d11.name),
    { source: 'send', data: { device: { 0: { battery_level: 33 } } } });
  const known = await api('GET', `/api/v1/endpoints/${d11.name}/lastKnown`);
  assert.equal(known.json['3']['0']['9'], 33);
  assert.ok(Date.parse(known.json['~3']['0']['9']) >= before - 1000, known.json['~3']['0']['9']);
});

// ---- 10. Queue mode ----

// Puts the queue-mode device to sleep and waits until lwm2md's awake window after its last
// message is over.
async function sleepQueueDevice() {
  await dq.run({ cmd: 'sleep' }, 'sleeping');
  await sleep(kAwakeWindowMs + 500);
}

test('queue mode: a call for a sleeping device waits for its next Update', async () => {
  await sleepQueueDevice();
  const from = dq.mark();
  const mark = events.mark();
  const context = { op: 'queued', msgId: '1' };
  assertAccepted(await action(dq.name, 'read', { paths: ['3/0/9'], options: { context } }), true);
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.asyncResult', dq.name),
    { context, intermediate: true, path: '3/0/9', source: 'read', success: true });
  assert.deepEqual(dq.since(from, 'ignored'), [], 'lwm2md sent to a sleeping device');

  await dq.run({ cmd: 'wake' }, 'awake');
  const get = await dq.waitFor(from, (e) => e.event === 'request');
  assert.deepEqual([get.method, get.path], ['GET', '/3/0/9']);
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.data', dq.name),
    { source: 'read', data: { device: { 0: { battery_level: 87 } } }, context });
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.asyncResult', dq.name, (p) => !p.intermediate),
    { context, path: '3/0/9', source: 'read', success: true });
  const updated = dq.since(from, 'updated');
  assert.ok(updated.length >= 1 && updated[0].code === '2.04', JSON.stringify(updated));
});

test('queue mode: a queued call expires after its timeoutMs', async () => {
  await sleepQueueDevice();
  const mark = events.mark();
  const context = { op: 'expire' };
  const started = Date.now();
  assertAccepted(await action(dq.name, 'read', { paths: ['3/0/9'], options: { context, timeoutMs: 1500 } }), true);
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.error', dq.name),
    { source: 'read', error: kNoResponse, context, path: '3/0/9' });
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1400 && elapsed < 5000, `expired after ${elapsed} ms`);
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.asyncResult', dq.name, (p) => !p.intermediate),
    { context, error: kNoResponse, path: '3/0/9', source: 'read', success: false });
});

test('queue mode: the queue holds lwm2m.max_queued_requests_per_endpoint calls, then 429', async () => {
  // Still asleep from the previous test, its awake window long over.
  const from = dq.mark();
  const mark = events.mark();
  assertAccepted(await action(dq.name, 'read', { paths: ['3/0/0'] }), true);
  assertAccepted(await action(dq.name, 'read', { paths: ['3/0/1'] }), true);
  const full = await action(dq.name, 'read', { paths: ['3/0/2'] });
  assert.equal(full.status, 429, full.text);
  assert.match(full.json.error, /queue full/);
  await dq.run({ cmd: 'wake' }, 'awake');
  await events.waitFor(mark, 'lwm2m.data', dq.name, (p) => p.data.device?.['0']?.model_number !== undefined);
  assert.deepEqual((await seen(dq, from, 2)).map((r) => `${r.method} ${r.path}`),
    ['GET /3/0/0', 'GET /3/0/1']);
});

// ---- 9, 10, 13. A restart ----

test('across a restart: observations, queued calls, interrupted calls', async () => {
  // An observation to survive the restart.
  const observe = await syncAction(d11.name, 'observe', { paths: ['3/0/10'] });
  assert.equal(observe.status, 200, observe.text);
  const tok = observe.json.tokens['3/0/10'];
  assert.ok(tok);
  // A call waiting for the sleeping queue-mode device.
  const asleepFrom = dq.mark();
  await sleepQueueDevice();
  const queuedContext = { op: 'queued-over-restart' };
  assertAccepted(await action(dq.name, 'read', { paths: ['3441/0/110'], options: { context: queuedContext } }), true);
  // A call sent, not answered (the path is silent), when the server stops.
  await d10.run({ cmd: 'silent', paths: ['/3/0/10'] }, 'silent');
  const from10 = d10.mark();
  const interruptedContext = { op: 'interrupted' };
  assertAccepted(await action(d10.name, 'read', { paths: ['3/0/10'], options: { context: interruptedContext } }));
  await d10.waitFor(from10, (e) => e.event === 'request' && e.silent);
  const countsBefore = await eventCounts(d10.name);

  const beforeRestart = events.mark();
  await restartServer();

  // The interrupted call ends in lwm2m.error and lwm2m.asyncResult (with its context). They
  // are published while lwm2md starts, before our event stream is open again: lwm2md keeps
  // them for streams that connect later (lwm2m.interrupted_report_retention_s), and counts
  // them once.
  assert.deepEqual(await events.waitFor(beforeRestart, 'lwm2m.error', d10.name),
    { source: 'read', error: 'request interrupted by a server restart', context: interruptedContext, path: '3/0/10' });
  assert.deepEqual(await events.waitFor(beforeRestart, 'lwm2m.asyncResult', d10.name),
    { context: interruptedContext, error: 'request interrupted by a server restart', path: '3/0/10', source: 'read', success: false });
  const countsAfter = await eventCounts(d10.name);
  assert.equal(countsAfter.error - countsBefore.error, 1, 'lwm2m.error events for the interrupted call');
  assert.equal(countsAfter.asyncResult - countsBefore.asyncResult, 1, 'lwm2m.asyncResult events for the interrupted call');
  await d10.run({ cmd: 'silent', paths: [] }, 'silent');

  // The observation goes on: a notification after the restart becomes a data event.
  let mark = events.mark();
  await d11.run({ cmd: 'set', path: '3/0/10', value: 20000 }, 'set');
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.data', d11.name),
    { source: 'notify', data: { device: { 0: { memory_free: 20000 } } } });
  const from11 = d11.mark();
  const cancel = await action(d11.name, 'observeCancel', { token: tok });
  assert.ok(cancel.status === 200 || cancel.status === 202, cancel.text);
  const get = await d11.waitFor(from11, (e) => e.event === 'request');
  assert.deepEqual([get.method, get.path, get.observe], ['GET', '/3/0/10', 1]);
  await d11.waitFor(from11, (e) => e.event === 'observe-cancelled');

  // The queued call runs when the device wakes.
  mark = events.mark();
  const fromQ = dq.mark();
  assert.deepEqual(dq.since(asleepFrom, 'ignored'), [], 'lwm2md sent to a sleeping device');
  await dq.run({ cmd: 'wake' }, 'awake');
  const outcome = await events.waitForAny(mark, ['lwm2m.data', 'lwm2m.error'], dq.name);
  assert.deepEqual(outcome, { type: 'lwm2m.data', endpoint: dq.name, time: outcome.time, payload:
    { source: 'read', data: { [kTestObjectName]: { 0: { string_value: 'initial value' } } }, context: queuedContext } });
  const queuedGet = await dq.waitFor(fromQ, (e) => e.event === 'request');
  assert.deepEqual([queuedGet.method, queuedGet.path], ['GET', '/3441/0/110']);
  assert.deepEqual(await events.waitFor(mark, 'lwm2m.asyncResult', dq.name, (p) => !p.intermediate),
    { context: queuedContext, path: '3441/0/110', source: 'read', success: true });
  const read10 = await syncAction(d10.name, 'read', { paths: ['3/0/10'] });
  assert.equal(read10.status, 200, `the 1.0 device after the restart: ${read10.text}`);
});

// Today's (and yesterday's, for a run across midnight UTC) event counts of endpoint.
async function eventCounts(endpoint) {
  const day = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
  const res = await api('GET', `/api/v1/billing?endpoint=${endpoint}&from=${day(-1)}&to=${day(0)}`);
  assert.equal(res.status, 200, res.text);
  const sum = {};
  for (const d of res.json.days) {
    for (const [kind, n] of Object.entries(d.counts)) sum[kind] = (sum[kind] ?? 0) + n;
  }
  return sum;
}

// ---- 6. Timeouts ----

test('a device that does not answer: 504 when sync, lwm2m.error when async', async () => {
  const original = await api('GET', '/api/v1/settings');
  assert.equal(original.status, 200, original.text);
  // Short retransmissions: ACK_TIMEOUT 200 ms, factor 1, one retransmission → the exchange
  // fails after 600 ms (RFC 7252 §4.8.2 MAX_TRANSMIT_WAIT).
  const patched = await api('PATCH', '/api/v1/settings',
    { coapAckTimeoutMs: 200, coapAckRandomFactor: 1.0, coapMaxRetransmit: 1 });
  assert.equal(patched.status, 200, patched.text);
  try {
    await d11.run({ cmd: 'silent', paths: ['/3/0/10'] }, 'silent');
    const from = d11.mark();
    const started = Date.now();
    const sync = await syncAction(d11.name, 'read', { paths: ['3/0/10'] });
    const elapsed = Date.now() - started;
    assert.equal(sync.status, 504, sync.text);
    assert.equal(sync.json.error, kNoResponse);
    assert.equal(sync.json.partialErrors, undefined);
    assert.ok(elapsed >= 500 && elapsed < 5000, `the exchange took ${elapsed} ms with a 600 ms MAX_TRANSMIT_WAIT`);
    const received = await d11.waitCount(from, (e) => e.event === 'request', 2);
    assert.equal(received.length, 2, `one retransmission: ${JSON.stringify(received)}`);
    assert.equal(received[1].duplicate, true);

    const mark = events.mark();
    const context = { op: 'timeout' };
    assertAccepted(await action(d11.name, 'read', { paths: ['3/0/10'], options: { context } }));
    assert.deepEqual(await events.waitFor(mark, 'lwm2m.error', d11.name),
      { source: 'read', error: kNoResponse, context, path: '3/0/10' });
    assert.deepEqual(await events.waitFor(mark, 'lwm2m.asyncResult', d11.name),
      { context, error: kNoResponse, path: '3/0/10', source: 'read', success: false });
  } finally {
    await d11.run({ cmd: 'silent', paths: [] }, 'silent');
    const { coapAckTimeoutMs, coapAckRandomFactor, coapMaxRetransmit } = original.json;
    const restored = await api('PATCH', '/api/v1/settings', { coapAckTimeoutMs, coapAckRandomFactor, coapMaxRetransmit });
    assert.equal(restored.status, 200, restored.text);
  }
});
