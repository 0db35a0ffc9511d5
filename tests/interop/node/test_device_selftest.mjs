// Self-test of test_device.mjs: the device registers with a small registrar written here
// (a coap.Server that answers /rd), and the test then plays the LwM2M server from the
// registrar's socket — reads in every format, writes, write-attributes, discover, execute,
// create/delete, observe and its cancellations, the 1.1 composite operations, Send, 1.0
// restrictions, silent paths and queue-mode sleep.
//
//   node --test test_device_selftest.mjs
// With LWM2MD_DEVICE_CAPTURE=DIR, the loopback traffic of the registrar's port is captured
// with tshark into DIR/device.pcap and every datagram the devices sent is checked with
// tshark's CoAP and LwM2M-TLV dissectors (tests/interop/test_device_selftest.sh sets it).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import coap from 'coap';
import packet from 'coap-packet';
import * as cbor from './device/cbor.mjs';
import { kDefinitions } from './device/model.mjs';
import { runSelfCheck } from './device/selfcheck.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceDir = process.env.LWM2MD_SOURCE_DIR ?? path.resolve(here, '../../..');
const captureDir = process.env.LWM2MD_DEVICE_CAPTURE;

const TEXT = 0; const LINK = 40; const OPAQUE = 42; const CBOR = 60; const SENML_JSON = 110;
const SENML_CBOR = 112; const TLV = 11542; const LWM2M_JSON = 11543;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hexOf = (b) => Buffer.from(b ?? []).toString('hex');
const kTypes = ['CON', 'NON', 'ACK', 'RST'];

function uintOf(buf) {
  let v = 0;
  for (const b of buf) v = v * 256 + b;
  return v;
}

// ---- The registrar: one socket for a coap.Server (answering /rd, /dp) and an Agent
// (sending the server's requests to the devices), like an LwM2M server's port 5683. ----

class Registrar {
  async start(family = 'udp4') {
    this.sock = dgram.createSocket(family);
    await new Promise((r) => this.sock.bind(0, family === 'udp6' ? '::1' : '127.0.0.1', r));
    this.port = this.sock.address().port;
    this.received = [];   // every datagram from a device, parsed, in arrival order
    this.requests = [];   // requests to the registrar (/rd, /dp)
    this.updateCode = '2.04';
    this.sock.on('message', (msg, rinfo) => {
      let p;
      try { p = packet.parse(msg); } catch { p = null; }
      if (!p) { this.received.push({ malformed: true, hex: hexOf(msg), rinfo }); return; }
      const opt = (n) => p.options.filter((o) => o.name === n).map((o) => o.value);
      this.last = {
        time: Date.now(), type: kTypes[(msg[0] >> 4) & 3], code: p.code, mid: p.messageId,
        token: hexOf(p.token), observe: opt('Observe').length ? uintOf(opt('Observe')[0]) : null,
        contentFormat: opt('Content-Format').length ? uintOf(opt('Content-Format')[0]) : null,
        path: `/${opt('Uri-Path').map(String).join('/')}`, query: opt('Uri-Query').map(String),
        payload: p.payload, port: rinfo.port,
      };
      this.received.push(this.last);
    });
    this.server = coap.createServer({ type: family });
    this.server.on('request', (req, res) => this.answer(req, res));
    await new Promise((r) => this.server.listen(this.sock, r));
    this.agent = new coap.Agent({ socket: this.sock });
  }

  answer(req, res) {
    const raw = this.last;
    this.requests.push(raw);
    const ep = raw.query.find((q) => q.startsWith('ep='))?.slice(3);
    if (req.method === 'POST' && raw.path === '/rd' && ep) {
      res.code = '2.01';
      res.setOption('Location-Path', [Buffer.from('rd'), Buffer.from(ep)]);
    } else if (req.method === 'POST' && raw.path.startsWith('/rd/')) {
      res.code = this.updateCode;
    } else if (req.method === 'DELETE' && raw.path.startsWith('/rd/')) {
      res.code = '2.02';
    } else if (req.method === 'POST' && raw.path === '/dp') {
      res.code = '2.04';
    } else {
      res.code = '4.04';
    }
    res.end();
  }

  // Sends one request to a device. Resolves { code, contentFormat, payload, location,
  // port } or { code: null } after timeoutMs; with observe, also the ObserveReadStream.
  request(dev, { method = 'GET', path: p, accept, contentFormat, observe, query, payload,
    confirmable = true, timeoutMs = 5000 }) {
    return new Promise((resolve) => {
      const options = {};
      if (accept !== undefined) options.Accept = accept;
      if (contentFormat !== undefined) options['Content-Format'] = contentFormat;
      const req = this.agent.request({ hostname: dev.host, port: dev.port, method, pathname: p,
        query, options, confirmable, observe });
      const timer = setTimeout(() => {
        this.agent.abort(req);
        resolve({ code: null, token: hexOf(req._packet.token) });
      }, timeoutMs);
      req.on('response', (res) => {
        clearTimeout(timer);
        const reply = this.received.findLast((d) => d.token === hexOf(res._packet.token) && d.code === res.code);
        resolve({
          code: res.code, contentFormat: reply?.contentFormat ?? null, observe: reply?.observe ?? null,
          payload: res.payload ?? Buffer.alloc(0), port: res.rsinfo.port, token: hexOf(res._packet.token),
          location: (res.options ?? []).filter((o) => o.name === 'Location-Path').map((o) => String(o.value)),
          stream: observe !== undefined ? res : undefined,
        });
        if (observe === undefined) res.resume?.();
      });
      req.on('error', () => {});
      req.end(payload);
    });
  }

  requestsFrom(endpoint) {
    return this.requests.filter((r) => r.path === `/rd/${endpoint}` || r.query.includes(`ep=${endpoint}`));
  }

  close() {
    this.server.close();
    this.sock.close();
  }
}

// ---- A device process and its JSON-line events ----

class DeviceProcess {
  constructor(registrar, args) {
    this.events = [];
    this.waiters = new Set();
    const host = registrar.sock.address().family === 'IPv6' ? '[::1]' : '127.0.0.1';
    this.host = registrar.sock.address().family === 'IPv6' ? '::1' : '127.0.0.1';
    this.proc = spawn(process.execPath, [path.join(here, 'test_device.mjs'), '--server',
      `${host}:${registrar.port}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.stderr = '';
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      let e;
      try { e = JSON.parse(line); } catch { e = { event: 'unparsed', line }; }
      e.time = Date.now();
      this.events.push(e);
      for (const w of this.waiters) w();
    });
    this.exited = new Promise((r) => this.proc.on('exit', r));
  }

  mark() { return this.events.length; }

  // Waits (bounded) for an event matching pred at index ≥ from.
  waitFor(pred, { from = 0, timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const look = () => this.events.slice(from).find(pred);
      const found = look();
      if (found) { resolve(found); return; }
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no matching device event in ${timeoutMs} ms; last events:\n` +
          this.events.slice(-8).map((e) => JSON.stringify(e)).join('\n') + `\nstderr: ${this.stderr}`));
      }, timeoutMs);
      const check = () => {
        const e = look();
        if (e) { clearTimeout(timer); this.waiters.delete(check); resolve(e); }
      };
      this.waiters.add(check);
    });
  }

  eventsSince(from, name) {
    return this.events.slice(from).filter((e) => e.event === name);
  }

  command(cmd) {
    this.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
  }

  async state() {
    const from = this.mark();
    this.command({ cmd: 'dump' });
    return this.waitFor((e) => e.event === 'state', { from });
  }

  async start() {
    const listening = await this.waitFor((e) => e.event === 'listening');
    this.port = listening.port;
    await this.waitFor((e) => e.event === 'registered' || e.event === 'register-failed');
    return this;
  }

  async stop() {
    this.command({ cmd: 'exit' });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

// ---- Capture (optional) ----

let capture = null;

async function startCapture(port) {
  fs.mkdirSync(captureDir, { recursive: true });
  const file = path.join(captureDir, 'device.pcap');
  const proc = spawn('tshark', ['-i', 'lo', '-f', `udp port ${port}`, '-w', file, '-q'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tshark did not start capturing: ${log}`)), 10000);
    proc.stderr.on('data', (d) => {
      log += d;
      if (log.includes('Capturing on')) { clearTimeout(timer); resolve(); }
    });
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
  return { proc, file, port, exited: new Promise((r) => proc.on('exit', r)) };
}

function tsharkCount(file, port, filter) {
  const out = execFileSync('tshark', ['-r', file, '-d', `udp.port==${port},coap`, '-Y', filter],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

// ---- Fixtures ----

const registrar = new Registrar();
let dev;  // the main LwM2M 1.1 device

test.before(async () => {
  await registrar.start();
  if (captureDir) capture = await startCapture(registrar.port);
  dev = await new DeviceProcess(registrar, ['--endpoint', 'dev11', '--lifetime', '120']).start();
});

test.after(async () => {
  await dev?.stop();
  registrar.close();
  if (capture) {
    capture.proc.kill('SIGINT');
    await capture.exited;
  }
});

async function read(path, accept, d = dev) {
  return registrar.request(d, { path, accept });
}

// ---- Tests ----

test('codec self-check passes', () => {
  assert.deepEqual(runSelfCheck(), []);
});

test('the object definitions agree with config/objects/*.toml', () => {
  for (const [oid, file] of [[1, '1-server.toml'], [3, '3-device.toml'], [3441, '3441-test-object.toml']]) {
    const text = fs.readFileSync(path.join(sourceDir, 'config/objects', file), 'utf8');
    const toml = new Map();
    for (const m of text.matchAll(/\{\s*id\s*=\s*(\d+)[^}]*\}/g)) {
      const field = (k) => new RegExp(`${k}\\s*=\\s*("([^"]*)"|true|false)`).exec(m[0]);
      toml.set(Number(m[1]), { ops: field('ops')?.[2], type: field('type')?.[2],
        multiple: field('multiple')?.[1] === 'true' });
    }
    for (const r of kDefinitions.get(oid).resources) {
      const t = toml.get(r.id);
      assert.ok(t, `${oid}/${r.id} is not in ${file}`);
      assert.equal(r.ops, t.ops, `ops of ${oid}/${r.id}`);
      if (r.ops !== 'E') assert.equal(r.type, t.type, `type of ${oid}/${r.id}`);
      assert.equal(r.multiple, t.multiple, `multiple of ${oid}/${r.id}`);
    }
  }
});

test('registers from the port it serves on, with the 1.1 parameters and object links', async () => {
  const reg = registrar.requestsFrom('dev11').find((r) => r.path === '/rd');
  assert.ok(reg, 'no Register');
  assert.equal(reg.code, '0.02');
  assert.deepEqual(reg.query, ['ep=dev11', 'lt=120', 'lwm2m=1.1', 'b=U']);
  assert.equal(reg.contentFormat, LINK);
  const links = reg.payload.toString();
  assert.match(links, /^<\/>;rt="oma\.lwm2m";ct="[^"]*"/);
  for (const l of ['</1/0>', '</3/0>', '</3441/0>']) assert.ok(links.includes(l), `${l} in ${links}`);
  const registered = dev.events.find((e) => e.event === 'registered');
  assert.equal(registered.location, '/rd/dev11');
  // The server's requests go to the Register's source port and are answered from it.
  assert.equal(reg.port, dev.port);
  const r = await read('/3/0/9', TEXT);
  assert.equal(r.code, '2.05');
  assert.equal(r.port, dev.port);
});

test('Read in every content format', async () => {
  const cases = [
    // [path, Accept, code, Content-Format, check(payload)]
    ['/3/0/9', undefined, '2.05', TLV, (p) => assert.equal(hexOf(p), 'c10957')],
    ['/3/0/9', TLV, '2.05', TLV, (p) => assert.equal(hexOf(p), 'c10957')],
    ['/3/0/9', TEXT, '2.05', TEXT, (p) => assert.equal(p.toString(), '87')],
    ['/3441/0/140', TEXT, '2.05', TEXT, (p) => assert.equal(p.toString(), '1')],
    ['/3441/0/170', TEXT, '2.05', TEXT, (p) => assert.equal(p.toString(), '3:0')],
    ['/3441/0/150', TEXT, '2.05', TEXT, (p) => assert.equal(p.toString(), 'ASNFZ4mrze8=')],
    ['/3441/0/1110/1', TEXT, '2.05', TEXT, (p) => assert.equal(p.toString(), 'second value')],
    ['/3441/0/150', OPAQUE, '2.05', OPAQUE, (p) => assert.equal(hexOf(p), '0123456789abcdef')],
    ['/3441/0/120', CBOR, '2.05', CBOR, (p) => assert.equal(hexOf(p), '1840')],
    ['/3441/0/130', CBOR, '2.05', CBOR, (p) => assert.equal(hexOf(p), 'fb400921f9f01b866e')],
    ['/3441/0/140', CBOR, '2.05', CBOR, (p) => assert.equal(hexOf(p), 'f5')],
    ['/3441/0/150', CBOR, '2.05', CBOR, (p) => assert.equal(hexOf(p), '480123456789abcdef')],
    // Multiple resource with a 16-bit id: A8 0456 len, then two Resource Instance TLVs.
    ['/3441/0/1110', TLV, '2.05', TLV, (p) => assert.equal(hexOf(p),
      `a804561f48000d${hexOf(Buffer.from('initial value'))}48010c${hexOf(Buffer.from('second value'))}`)],
    ['/3441/0/1110/1', TLV, '2.05', TLV, (p) => assert.equal(hexOf(p), `48010c${hexOf(Buffer.from('second value'))}`)],
    ['/3/0/11', SENML_JSON, '2.05', SENML_JSON,
      (p) => assert.deepEqual(JSON.parse(p), [{ bn: '/3/0/', n: '11/0', v: 0 }])],
    ['/3441/0/150', SENML_JSON, '2.05', SENML_JSON,
      (p) => assert.deepEqual(JSON.parse(p), [{ bn: '/3441/0/', n: '150', vd: 'ASNFZ4mrze8' }])],
    ['/3/0/9', SENML_CBOR, '2.05', SENML_CBOR, (p) => assert.equal(hexOf(p), '81a321652f332f302f006139021857')],
    ['/3/0', LWM2M_JSON, '2.05', LWM2M_JSON, (p) => {
      const doc = JSON.parse(p);
      assert.equal(doc.bn, '/3/0/');
      assert.deepEqual(doc.e.find((e) => e.n === '0'), { n: '0', sv: 'lwm2md interop' });
      assert.deepEqual(doc.e.find((e) => e.n === '11/0'), { n: '11/0', v: 0 });
      assert.ok(!doc.e.some((e) => e.n === '4'), 'executables are not read');
    }],
    ['/3441', SENML_JSON, '2.05', SENML_JSON, (p) => {
      const recs = JSON.parse(p);
      assert.equal(recs[0].bn, '/3441/');
      assert.deepEqual(recs.find((r) => r.n === '0/1170/1'), { n: '0/1170/1', vlo: '1:0' });
    }],
    // An object read: Object Instance TLVs (kind bits 00) around the resources.
    ['/3441', TLV, '2.05', TLV, (p) => assert.equal(p[0] >> 6, 0)],
    ['/3/0', TEXT, '4.06'], ['/3441/0/1110', TEXT, '4.06'], ['/3441/0/110', OPAQUE, '4.06'],
    ['/3/0', CBOR, '4.06'], ['/3/0/9', 50, '4.06'],
    ['/3/0/99', TLV, '4.04'], ['/3/1', TLV, '4.04'], ['/5', TLV, '4.04'], ['/3441/0/1110/7', TEXT, '4.04'],
    ['/rd', TLV, '4.04'], ['/3/0/9/0/1', TLV, '4.04'],
    ['/3/0/4', TEXT, '4.05'],
  ];
  for (const [p, accept, code, format, checkPayload] of cases) {
    const r = await read(p, accept);
    assert.equal(r.code, code, `GET ${p} Accept ${accept}: ${r.payload}`);
    if (format !== undefined) assert.equal(r.contentFormat, format, `Content-Format of ${p} ${accept}`);
    if (checkPayload) checkPayload(r.payload);
  }
  // Every request was reported once, with its options.
  const reported = dev.events.find((e) => e.event === 'request' && e.path === '/3441/0/130' && e.accept === CBOR);
  assert.deepEqual({ method: reported.method, contentFormat: reported.contentFormat, observe: reported.observe,
    query: reported.query, payloadHex: reported.payloadHex },
  { method: 'GET', contentFormat: null, observe: null, query: [], payloadHex: '' });
});

test('Write (replace and partial update) in every content format', async () => {
  const put = (p, contentFormat, payload, method = 'PUT') =>
    registrar.request(dev, { method, path: p, contentFormat, payload });
  assert.equal((await put('/3441/0/110', TEXT, 'hello')).code, '2.04');
  assert.equal((await read('/3441/0/110', TEXT)).payload.toString(), 'hello');
  assert.equal((await put('/3441/0/120', TLV, Buffer.from('c1782a', 'hex'))).code, '2.04');
  assert.equal((await read('/3441/0/120', TEXT)).payload.toString(), '42');
  assert.equal((await put('/3441/0/130', CBOR, cbor.encode(2.5))).code, '2.04');
  assert.equal((await read('/3441/0/130', TEXT)).payload.toString(), '2.5');
  assert.equal((await put('/3441/0/150', OPAQUE, Buffer.from('cafe', 'hex'))).code, '2.04');
  assert.equal(hexOf((await read('/3441/0/150', OPAQUE)).payload), 'cafe');
  assert.equal((await put('/3441/0/1110/1', TEXT, 'replaced')).code, '2.04');
  // Partial update (POST) merges resource instances; replace (PUT) sets exactly them.
  assert.equal((await put('/3441/0', SENML_JSON,
    '[{"bn":"/3441/0/","n":"140","vb":false},{"n":"1120/5","v":7}]', 'POST')).code, '2.04');
  let multi = JSON.parse((await read('/3441/0/1120', SENML_JSON)).payload);
  assert.deepEqual(multi.map((r) => [r.n, r.v]), [['1120/0', 64], ['1120/1', -12345], ['1120/5', 7]]);
  assert.equal((await put('/3441/0/1120', SENML_CBOR,
    cbor.encode([new Map([[-2, '/3441/0/1120/'], [0, '3'], [2, 9]])]))).code, '2.04');
  multi = JSON.parse((await read('/3441/0/1120', SENML_JSON)).payload);
  assert.deepEqual(multi.map((r) => [r.n, r.v]), [['1120/3', 9]]);
  assert.equal((await put('/3441/0', LWM2M_JSON,
    '{"bn":"/3441/0/","e":[{"n":"160","v":5},{"n":"1150/0","sv":"AQI="}]}')).code, '2.04');
  // TLV of an instance: 1140 (16-bit id) as a Multiple Resource holding instance 1 = true.
  assert.equal((await put('/3441/0', TLV, Buffer.from('a30474410101', 'hex'), 'POST')).code, '2.04');
  const s = await dev.state();
  assert.equal(s.objects['3441']['0']['110'], 'hello');
  assert.equal(s.objects['3441']['0']['140'], false);
  assert.equal(s.objects['3441']['0']['160'], 5);
  assert.deepEqual(s.objects['3441']['0']['1110'], { 0: 'initial value', 1: 'replaced' });
  assert.deepEqual(s.objects['3441']['0']['1140'], { 0: true, 1: true });
  assert.equal(s.objects['3441']['0']['1150']['0'], '0102');
  // Refusals.
  assert.equal((await put('/3441/0', SENML_JSON, '[{"n":"/3441/0/999","v":1}]')).code, '4.04');
  assert.equal((await put('/3441/0', TLV, Buffer.from('c1ff01', 'hex'))).code, '4.04');
  assert.equal((await put('/3/0/9', TEXT, '5')).code, '4.05');
  assert.equal((await put('/3/0', SENML_JSON, '[{"n":"/3/0/0","vs":"x"}]')).code, '4.05');
  assert.equal((await put('/3441/0/120', TEXT, 'abc')).code, '4.00');
  assert.equal((await put('/3441/0/120', TLV, Buffer.from('c178', 'hex'))).code, '4.00');
  assert.equal((await put('/3441/0/120', SENML_JSON, '[{"n":"/3441/0/120","vs":"x"}]')).code, '4.00');
  assert.equal((await put('/3441/0/120', 50, '{}')).code, '4.15');
  assert.equal((await put('/3441/9/120', TEXT, '1')).code, '4.04');
  assert.equal((await read('/3441/0/120', TEXT)).payload.toString(), '42', 'refused writes change nothing');
});

test('Write-Attributes are kept per path and shown by Discover', async () => {
  const wa = (p, query) => registrar.request(dev, { method: 'PUT', path: p, query });
  assert.equal((await wa('/3441/0', 'pmin=2&pmax=60')).code, '2.04');
  assert.equal((await wa('/3441/0/120', 'gt=50&lt=10&st=1&epmin=1&epmax=30')).code, '2.04');
  assert.equal((await wa('/3441/0/120', 'epmax')).code, '2.04');   // a name alone clears it
  assert.equal((await wa('/3441/0', 'foo=1')).code, '4.00');
  assert.equal((await wa('/3441/0/120', 'gt=abc')).code, '4.00');
  assert.equal((await wa('/3441/0/110', 'gt=1')).code, '4.00');    // not numeric
  assert.equal((await wa('/3441/0/120', 'lt=60')).code, '4.00');   // lt above gt
  assert.equal((await wa('/3441/4', 'pmin=1')).code, '4.04');
  const s = await dev.state();
  assert.deepEqual(s.attributes, { '/3441/0': { pmin: '2', pmax: '60' },
    '/3441/0/120': { gt: '50', lt: '10', st: '1', epmin: '1' } });
  const inst = await read('/3441/0', LINK);
  assert.equal(inst.code, '2.05');
  assert.equal(inst.contentFormat, LINK);
  const links = inst.payload.toString().split(',');
  assert.equal(links[0], '</3441/0>;pmin=2;pmax=60');
  assert.ok(links.includes('</3441/0/120>;gt=50;lt=10;st=1;epmin=1'), links.join(','));
  assert.ok(links.includes('</3441/0/1110>;dim=2'));
  assert.ok(links.includes('</3441/0/3>'), 'executables are discovered');
  const obj = (await read('/3', LINK)).payload.toString().split(',');
  assert.deepEqual(obj.slice(0, 3), ['</3>', '</3/0>', '</3/0/0>']);
  const res = (await read('/3441/0/1110', LINK)).payload.toString();
  assert.equal(res, '</3441/0/1110>;dim=2,</3441/0/1110/0>,</3441/0/1110/1>');
  // Clean up for the observe tests.
  assert.equal((await wa('/3441/0/120', 'gt&lt&st&epmin')).code, '2.04');
  assert.equal((await wa('/3441/0', 'pmin&pmax')).code, '2.04');
});

test('Execute with arguments, and on non-executable resources', async () => {
  const from = dev.mark();
  const exec = (p, payload, contentFormat) =>
    registrar.request(dev, { method: 'POST', path: p, payload, contentFormat });
  assert.equal((await exec('/3441/0/3', "0='abc123',1")).code, '2.04');
  const e = await dev.waitFor((x) => x.event === 'executed', { from });
  assert.deepEqual([e.path, e.args], ['/3441/0/3', "0='abc123',1"]);
  const args = JSON.parse((await read('/3441/0/4', SENML_JSON)).payload);
  assert.deepEqual(args.map((r) => [r.n, r.vs]), [['4/0', 'abc123'], ['4/1', '']]);
  assert.equal((await exec('/3/0/4')).code, '2.04');
  // On a scratch instance: 2 clears the values, 0 restores the initial ones, 1 randomizes.
  assert.equal((await registrar.request(dev, { method: 'POST', path: '/3441', contentFormat: SENML_JSON,
    payload: '[{"n":"/3441/9/110","vs":"scratch"}]' })).code, '2.01');
  assert.equal((await exec('/3441/9/2')).code, '2.04');
  assert.equal((await read('/3441/9/110', TEXT)).payload.toString(), '');
  assert.equal((await read('/3441/9/1120/1', TEXT)).payload.toString(), '0');
  assert.equal((await exec('/3441/9/0')).code, '2.04');
  assert.equal((await read('/3441/9/110', TEXT)).payload.toString(), 'initial value');
  assert.equal((await exec('/3441/9/1')).code, '2.04');
  assert.match((await read('/3441/9/110', TEXT)).payload.toString(), /^random \d+$/);
  assert.equal((await registrar.request(dev, { method: 'DELETE', path: '/3441/9' })).code, '2.02');
  assert.equal((await exec('/3441/0/3', 'x=1')).code, '4.00');
  assert.equal((await exec('/3441/0/3', "0='a b'")).code, '4.00');
  assert.equal((await exec('/3441/0/110')).code, '4.05');
  assert.equal((await exec('/3/0/4/0')).code, '4.05');
  assert.equal((await exec('/3441/0/99')).code, '4.04');
});

test('Create and Delete an instance of the test object', async () => {
  const before = registrar.requestsFrom('dev11').length;
  // An Object Instance TLV naming instance 5, holding 110 = "made" and 120 = 7.
  const body = Buffer.from(`080509c46e${hexOf(Buffer.from('made'))}c17807`, 'hex');
  const created = await registrar.request(dev, { method: 'POST', path: '/3441', contentFormat: TLV, payload: body });
  assert.equal(created.code, '2.01');
  assert.deepEqual(created.location, ['3441', '5']);
  assert.equal((await read('/3441/5/110', TEXT)).payload.toString(), 'made');
  assert.equal((await read('/3441/5/120', TEXT)).payload.toString(), '7');
  // The device tells the server its objects changed (Update with links).
  await waitUntil(() => registrar.requestsFrom('dev11').slice(before).some(
    (r) => r.path === '/rd/dev11' && r.payload.toString().includes('</3441/5>')));
  const senml = await registrar.request(dev, { method: 'POST', path: '/3441', contentFormat: SENML_JSON,
    payload: '[{"bn":"/3441/7/","n":"120","v":1}]' });
  assert.deepEqual([senml.code, senml.location], ['2.01', ['3441', '7']]);
  const create = (p, payload) => registrar.request(dev, { method: 'POST', path: p, contentFormat: TLV, payload });
  assert.equal((await create('/3441', body)).code, '4.00', 'instance 5 exists');
  assert.equal((await create('/3', Buffer.alloc(0))).code, '4.05');
  assert.equal((await registrar.request(dev, { method: 'DELETE', path: '/3441/5' })).code, '2.02');
  assert.equal((await registrar.request(dev, { method: 'DELETE', path: '/3441/7' })).code, '2.02');
  assert.equal((await read('/3441/5/110', TEXT)).code, '4.04');
  assert.equal((await registrar.request(dev, { method: 'DELETE', path: '/3441/5' })).code, '4.04');
  assert.equal((await registrar.request(dev, { method: 'DELETE', path: '/3/0' })).code, '4.05');
});

async function waitUntil(pred, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (pred()) return;
    await sleep(20);
  }
  assert.fail('condition not met in time');
}

// Notifications from the device for a token, as the registrar received them after the
// mark (an index into registrar.received).
function notificationsFor(token, mark = 0) {
  return registrar.received.slice(mark).filter((d) => d.token === token && d.code === '2.05');
}

test('Observe: notifications on set, pmin, pmax, cancel by RST and by Observe=1', async () => {
  const wa = (p, query) => registrar.request(dev, { method: 'PUT', path: p, query });
  assert.equal((await wa('/3/0/9', 'pmin=1')).code, '2.04');
  const obs = await registrar.request(dev, { path: '/3/0/9', accept: TEXT, observe: 0 });
  assert.equal(obs.code, '2.05');
  assert.equal(obs.payload.toString(), '87');
  assert.equal(typeof obs.observe, 'number', 'the first response carries Observe');
  const t0 = Date.now();
  const m0 = registrar.received.length;
  let from = dev.mark();
  dev.command({ cmd: 'set', path: '3/0/9', value: 50 });
  dev.command({ cmd: 'set', path: '3/0/9', value: 51 });
  const n1 = await dev.waitFor((e) => e.event === 'notified' && e.token === obs.token, { from });
  // pmin=1: the two changes make one notification, no sooner than 1 s after the first
  // response, with the latest value.
  assert.ok(n1.time - t0 >= 900, `notified after ${n1.time - t0} ms despite pmin=1`);
  await waitUntil(() => notificationsFor(obs.token, m0).length >= 1);
  const wire = notificationsFor(obs.token, m0);
  assert.equal(wire.length, 1);
  assert.equal(wire[0].payload.toString(), '51');
  assert.equal(wire[0].type, 'NON', 'notifications are NON by default');
  assert.ok(wire[0].observe > obs.observe, 'the Observe number grows');
  assert.equal(wire[0].contentFormat, TEXT);
  assert.equal(n1.seq, wire[0].observe);

  // pmax: a notification without a change.
  assert.equal((await wa('/3441/0/120', 'pmax=1')).code, '2.04');
  const periodic = await registrar.request(dev, { path: '/3441/0/120', accept: TEXT, observe: 0 });
  from = dev.mark();
  const p1 = await dev.waitFor((e) => e.event === 'notified' && e.token === periodic.token, { from, timeoutMs: 3000 });
  assert.equal(p1.payloadHex, hexOf(Buffer.from('42')));
  assert.equal((await wa('/3441/0/120', 'pmax')).code, '2.04');

  // Cancel by RST: the npm client forgets the token, so the next notification is answered
  // with RST, which must end the observation on the device.
  obs.stream.close();
  from = dev.mark();
  dev.command({ cmd: 'set', path: '3/0/9', value: 52 });
  const cancelled = await dev.waitFor((e) => e.event === 'observe-cancelled' && e.token === obs.token,
    { from, timeoutMs: 4000 });
  assert.equal(cancelled.reason, 'rst');
  from = dev.mark();
  dev.command({ cmd: 'set', path: '3/0/9', value: 53 });
  await sleep(1300);
  assert.equal(dev.eventsSince(from, 'notified').filter((e) => e.token === obs.token).length, 0);

  // Cancel by Observe=1 (RFC 7641 §3.6): the npm client's eager deregistration.
  from = dev.mark();
  periodic.stream.close(true);
  const c2 = await dev.waitFor((e) => e.event === 'observe-cancelled' && e.token === periodic.token, { from });
  assert.equal(c2.reason, 'observe=1');
  const s = await dev.state();
  assert.deepEqual(s.observations, []);
  assert.equal((await wa('/3/0/9', 'pmin')).code, '2.04');
});

test('Observe an instance in TLV; a deleted instance ends the observation with 4.04', async () => {
  const created = await registrar.request(dev, { method: 'POST', path: '/3441', contentFormat: SENML_JSON,
    payload: '[{"bn":"/3441/3/","n":"110","vs":"watched"}]' });
  assert.equal(created.code, '2.01');
  const obs = await registrar.request(dev, { path: '/3441/3', observe: 0 });
  assert.equal(obs.code, '2.05');
  assert.equal(obs.contentFormat, TLV);
  let from = dev.mark();
  const m0 = registrar.received.length;
  dev.command({ cmd: 'set', path: '3441/3/1120/1', value: 99 });
  await dev.waitFor((e) => e.event === 'notified' && e.token === obs.token, { from });
  await waitUntil(() => notificationsFor(obs.token, m0).length === 1);
  // The notification is the instance in TLV; resource 1120 now holds 99 at instance 1.
  assert.ok(notificationsFor(obs.token, m0)[0].payload.includes(Buffer.from('410163', 'hex')));
  from = dev.mark();
  assert.equal((await registrar.request(dev, { method: 'DELETE', path: '/3441/3' })).code, '2.02');
  const end = await dev.waitFor((e) => e.event === 'observe-cancelled' && e.token === obs.token, { from });
  assert.equal(end.reason, '4.04');
  await waitUntil(() => registrar.received.some((d) => d.token === obs.token && d.code === '4.04'));
  assert.equal(registrar.received.find((d) => d.token === obs.token && d.code === '4.04').observe, null);
  obs.stream.close();
});

test('1.1 composite operations: Read-, Write- and Observe-Composite', async () => {
  const body = JSON.stringify([{ n: '/3/0/9' }, { n: '/3441/0/110' }, { n: '/3441/0/1140' }, { n: '/9/0/1' }]);
  const r = await registrar.request(dev, { method: 'FETCH', path: '/', contentFormat: SENML_JSON,
    accept: SENML_JSON, payload: body });
  assert.equal(r.code, '2.05');
  assert.equal(r.contentFormat, SENML_JSON);
  assert.deepEqual(JSON.parse(r.payload), [{ n: '/3/0/9', v: 53 }, { n: '/3441/0/110', vs: 'hello' },
    { n: '/3441/0/1140/0', vb: true }, { n: '/3441/0/1140/1', vb: true }]);
  const rc = await registrar.request(dev, { method: 'FETCH', path: '/', contentFormat: SENML_CBOR,
    payload: cbor.encode([new Map([[0, '/3/0/9']])]) });
  assert.equal(rc.code, '2.05');
  assert.equal(rc.contentFormat, SENML_CBOR);
  assert.equal(hexOf(rc.payload), `81a200662f332f302f39021835`);
  const missing = await registrar.request(dev, { method: 'FETCH', path: '/', contentFormat: SENML_JSON,
    payload: '[{"n":"/9/0"}]' });
  assert.equal(missing.code, '4.04');

  const patch = (payload) =>
    registrar.request(dev, { method: 'iPATCH', path: '/', contentFormat: SENML_JSON, payload });
  assert.equal((await patch('[{"n":"/3441/0/110","vs":"patched"},{"n":"/3/0/14","vs":"+02:00"}]')).code, '2.04');
  assert.equal((await read('/3441/0/110', TEXT)).payload.toString(), 'patched');
  assert.equal((await read('/3/0/14', TEXT)).payload.toString(), '+02:00');
  // All or nothing: a read-only path refuses the whole patch.
  assert.equal((await patch('[{"n":"/3441/0/110","vs":"no"},{"n":"/3/0/9","v":1}]')).code, '4.05');
  assert.equal((await read('/3441/0/110', TEXT)).payload.toString(), 'patched');
  assert.equal((await patch('[{"n":"/3441/0/999","v":1}]')).code, '4.04');

  const obs = await registrar.request(dev, { method: 'FETCH', path: '/', contentFormat: SENML_JSON,
    accept: SENML_JSON, observe: 0, payload: '[{"n":"/3/0/9"},{"n":"/3441/0/110"}]' });
  assert.equal(obs.code, '2.05');
  assert.deepEqual(JSON.parse(obs.payload), [{ n: '/3/0/9', v: 53 }, { n: '/3441/0/110', vs: 'patched' }]);
  const m0 = registrar.received.length;
  dev.command({ cmd: 'set', path: '3441/0/110', value: 'composite' });
  await waitUntil(() => notificationsFor(obs.token, m0).length === 1);
  assert.deepEqual(JSON.parse(notificationsFor(obs.token, m0)[0].payload),
    [{ n: '/3/0/9', v: 53 }, { n: '/3441/0/110', vs: 'composite' }]);
  const from = dev.mark();
  obs.stream.close(true);  // FETCH with Observe=1 and the same token
  const c = await dev.waitFor((e) => e.event === 'observe-cancelled' && e.token === obs.token, { from });
  assert.equal(c.reason, 'observe=1');
});

test('Send (POST /dp) in SenML CBOR and SenML JSON', async () => {
  for (const [format, cf] of [['senml-cbor', SENML_CBOR], ['senml-json', SENML_JSON]]) {
    const from = dev.mark();
    const before = registrar.requests.length;
    dev.command({ cmd: 'send', paths: ['/3/0/9', '/3441/0/110'], format });
    const sent = await dev.waitFor((e) => e.event === 'sent', { from });
    assert.equal(sent.code, '2.04');
    const dp = registrar.requests.slice(before).find((r) => r.path === '/dp');
    assert.equal(dp.contentFormat, cf);
    const recs = cf === SENML_JSON ? JSON.parse(dp.payload)
      : cbor.decode(dp.payload).map((m) => ({ n: m.get(0), v: m.get(2), vs: m.get(3) }));
    assert.deepEqual(recs.map((x) => [x.n, x.v ?? x.vs]), [['/3/0/9', 53], ['/3441/0/110', 'composite']]);
  }
});

test('silent paths are never answered, even when retransmitted', async () => {
  let from = dev.mark();
  dev.command({ cmd: 'silent', paths: ['/3/0/13'] });
  await dev.waitFor((e) => e.event === 'silent', { from });
  from = dev.mark();
  const r = await registrar.request(dev, { path: '/3/0/13', accept: TEXT, timeoutMs: 3500 });
  assert.equal(r.code, null, 'a silent path must time out');
  const seen = dev.eventsSince(from, 'request').filter((e) => e.path === '/3/0/13');
  assert.ok(seen.length >= 2, 'the original and at least one retransmission were received');
  assert.ok(seen.every((e) => e.silent));
  assert.ok(seen.slice(1).every((e) => e.duplicate));
  assert.equal(registrar.received.filter((d) => d.token === r.token).length, 0, 'nothing came back');
  assert.equal((await read('/3/0/14', TEXT)).code, '2.05', 'other paths still answer');
  from = dev.mark();
  dev.command({ cmd: 'silent', paths: [] });
  await dev.waitFor((e) => e.event === 'silent', { from });
  const now = Number((await read('/3/0/13', TEXT)).payload.toString());
  assert.ok(Math.abs(now - Date.now() / 1000) < 5, `current time ${now}`);
});

test('1.0 device: TLV, text and LwM2M JSON only; no composite', async () => {
  const d10 = await new DeviceProcess(registrar,
    ['--endpoint', 'dev10', '--version', '1.0', '--lifetime', '60']).start();
  try {
    const reg = registrar.requestsFrom('dev10').find((r) => r.path === '/rd');
    assert.deepEqual(reg.query, ['ep=dev10', 'lt=60', 'lwm2m=1.0', 'b=U']);
    assert.equal(reg.payload.toString(), '</1/0>,</3/0>,</3441/0>');
    for (const [accept, code] of [[TLV, '2.05'], [TEXT, '2.05'], [LWM2M_JSON, '2.05'],
      [SENML_JSON, '4.06'], [SENML_CBOR, '4.06'], [CBOR, '4.06']]) {
      assert.equal((await read('/3/0/9', accept, d10)).code, code, `Accept ${accept}`);
    }
    assert.equal((await read('/3441/0/150', TEXT, d10)).code, '4.06', '1.0 has no text form of opaque');
    assert.equal((await registrar.request(d10, { method: 'PUT', path: '/3441/0/110', contentFormat: SENML_JSON,
      payload: '[{"n":"/3441/0/110","vs":"x"}]' })).code, '4.15');
    assert.equal((await registrar.request(d10, { method: 'FETCH', path: '/', contentFormat: SENML_JSON,
      payload: '[{"n":"/3/0/9"}]' })).code, '4.05');
    assert.equal((await registrar.request(d10, { method: 'PUT', path: '/3/0/9', query: 'epmin=1' })).code, '4.00');
  } finally {
    await d10.stop();
  }
});

test('queue mode: asleep the device ignores everything; on wake it updates and notifies', async () => {
  const dq = await new DeviceProcess(registrar, ['--endpoint', 'devq', '--binding', 'UQ', '--lifetime', '60']).start();
  try {
    const reg = registrar.requestsFrom('devq').find((r) => r.path === '/rd');
    assert.deepEqual(reg.query, ['ep=devq', 'lt=60', 'lwm2m=1.1', 'b=U', 'Q']);
    const obs = await registrar.request(dq, { path: '/3/0/9', accept: TEXT, observe: 0 });
    assert.equal(obs.code, '2.05');
    let from = dq.mark();
    dq.command({ cmd: 'sleep' });
    await dq.waitFor((e) => e.event === 'sleeping', { from });
    const m0 = registrar.received.length;
    dq.command({ cmd: 'set', path: '3/0/9', value: 12 });
    const r = await registrar.request(dq, { path: '/3/0/0', accept: TEXT, timeoutMs: 1500 });
    assert.equal(r.code, null, 'asleep, the device answers nothing');
    await dq.waitFor((e) => e.event === 'ignored', { from });
    assert.equal(notificationsFor(obs.token, m0).length, 0, 'no notification while asleep');
    const updates = registrar.requestsFrom('devq').length;
    from = dq.mark();
    dq.command({ cmd: 'wake' });
    const updated = await dq.waitFor((e) => e.event === 'updated', { from });
    assert.equal(updated.code, '2.04');
    assert.equal(registrar.requestsFrom('devq').slice(updates)[0].path, '/rd/devq');
    await waitUntil(() => notificationsFor(obs.token, m0).length === 1);
    assert.equal(notificationsFor(obs.token, m0)[0].payload.toString(), '12');
    assert.ok(notificationsFor(obs.token, m0)[0].time >= registrar.requestsFrom('devq').slice(updates)[0].time,
      'the held notification follows the Update');
    assert.equal((await read('/3/0/0', TEXT, dq)).code, '2.05');
    obs.stream.close();
  } finally {
    await dq.stop();
  }
});

test('--con-notify sends CON notifications; the ACK is accepted and an RST cancels', async () => {
  const dc = await new DeviceProcess(registrar, ['--endpoint', 'devcon', '--con-notify']).start();
  try {
    const obs = await registrar.request(dc, { path: '/3441/0/120', accept: CBOR, observe: 0 });
    assert.equal(obs.code, '2.05');
    let m0 = registrar.received.length;
    dc.command({ cmd: 'set', path: '3441/0/120', value: 1 });
    await waitUntil(() => notificationsFor(obs.token, m0).length === 1);
    const n = notificationsFor(obs.token, m0)[0];
    assert.equal(n.type, 'CON');
    assert.equal(hexOf(n.payload), '01');
    await sleep(3200);
    // The npm client ACKed it: no retransmission after the longest first ACK timeout (3 s).
    assert.equal(registrar.received.filter((d) => d.mid === n.mid && d.token === obs.token).length, 1);
    obs.stream.close();
    const from = dc.mark();
    m0 = registrar.received.length;
    dc.command({ cmd: 'set', path: '3441/0/120', value: 2 });
    const c = await dc.waitFor((e) => e.event === 'observe-cancelled' && e.token === obs.token, { from });
    assert.equal(c.reason, 'rst');
  } finally {
    await dc.stop();
  }
});

test('a short lifetime brings an Update every lifetime/2, waking a sleeping device', async () => {
  const dl = await new DeviceProcess(registrar,
    ['--endpoint', 'devlt', '--lifetime', '2', '--binding', 'UQ']).start();
  try {
    const t0 = registrar.requestsFrom('devlt').find((r) => r.path === '/rd').time;
    const updates = () => registrar.requestsFrom('devlt').filter((r) => r.path === '/rd/devlt');
    await waitUntil(() => updates().length >= 2, 4000);
    const first = updates()[0].time - t0;
    assert.ok(first >= 900 && first < 2000, `first Update after ${first} ms`);
    const from = dl.mark();
    dl.command({ cmd: 'sleep' });
    await dl.waitFor((e) => e.event === 'sleeping', { from });
    const awake = await dl.waitFor((e) => e.event === 'awake', { from, timeoutMs: 3000 });
    const updated = await dl.waitFor((e) => e.event === 'updated' && e.time >= awake.time, { from });
    assert.equal(updated.code, '2.04');
  } finally {
    await dl.stop();
  }
});

test('IPv6: registers and serves over ::1', async () => {
  const r6 = new Registrar();
  await r6.start('udp6');
  const d6 = await new DeviceProcess(r6, ['--endpoint', 'dev6']).start();
  try {
    const reg = r6.requestsFrom('dev6').find((r) => r.path === '/rd');
    assert.equal(reg.port, d6.port);
    const r = await r6.request(d6, { path: '/3/0/1', accept: TEXT });
    assert.equal(r.code, '2.05');
    assert.equal(r.payload.toString(), 'npm-coap test device');
    const from = d6.mark();
    d6.command({ cmd: 'deregister' });
    const dereg = await d6.waitFor((e) => e.event === 'deregistered', { from });
    assert.equal(dereg.code, '2.02');
  } finally {
    await d6.stop();
    r6.close();
  }
});

test('Updates: on command, on a new lifetime or binding, by trigger, and after 4.04', async () => {
  const updatesAfter = (n) =>
    registrar.requestsFrom('dev11').slice(n).filter((r) => r.path === '/rd/dev11');
  let n = registrar.requestsFrom('dev11').length;
  let from = dev.mark();
  dev.command({ cmd: 'update' });
  assert.equal((await dev.waitFor((e) => e.event === 'updated', { from })).code, '2.04');
  assert.deepEqual(updatesAfter(n)[0].query, []);
  n = registrar.requestsFrom('dev11').length;
  dev.command({ cmd: 'update', lifetime: 90 });
  await waitUntil(() => updatesAfter(n).length === 1);
  assert.deepEqual(updatesAfter(n)[0].query, ['lt=90']);
  assert.equal((await read('/1/0/1', TEXT)).payload.toString(), '90');
  // TS 1.1 §6.2.2: a new Lifetime or Binding written by the server is announced in an Update.
  n = registrar.requestsFrom('dev11').length;
  const putText = (p, payload) => registrar.request(dev, { method: 'PUT', path: p, contentFormat: TEXT, payload });
  assert.equal((await putText('/1/0/1', '100')).code, '2.04');
  await waitUntil(() => updatesAfter(n).length === 1);
  assert.deepEqual(updatesAfter(n)[0].query, ['lt=100']);
  n = registrar.requestsFrom('dev11').length;
  assert.equal((await putText('/1/0/7', 'UQ')).code, '2.04');
  await waitUntil(() => updatesAfter(n).length === 1);
  assert.deepEqual(updatesAfter(n)[0].query, ['b=U', 'Q']);
  // Registration Update Trigger (/1/0/8).
  n = registrar.requestsFrom('dev11').length;
  assert.equal((await registrar.request(dev, { method: 'POST', path: '/1/0/8' })).code, '2.04');
  await waitUntil(() => updatesAfter(n).length === 1);
  assert.deepEqual(updatesAfter(n)[0].query, []);
  registrar.updateCode = '4.04';
  from = dev.mark();
  dev.command({ cmd: 'update' });
  assert.equal((await dev.waitFor((e) => e.event === 'updated', { from })).code, '4.04');
  registrar.updateCode = '2.04';
  const again = await dev.waitFor((e) => e.event === 'registered', { from });
  assert.equal(again.location, '/rd/dev11');
});

test('the capture holds only well-formed CoAP, LwM2M TLV, CBOR and JSON from the devices',
  { skip: !captureDir && 'set LWM2MD_DEVICE_CAPTURE to capture' }, async () => {
  await sleep(500);  // let the last datagrams reach the capture
  capture.proc.kill('SIGINT');
  await capture.exited;
  const { file, port } = capture;
  capture = null;
  const fromDevices = `udp.dstport == ${port}`;
  const all = tsharkCount(file, port, fromDevices);
  const coapOnes = tsharkCount(file, port, `${fromDevices} && coap`);
  const bad = tsharkCount(file, port, `${fromDevices} && (_ws.malformed || _ws.expert.severity >= "Warning")`);
  assert.ok(all > 50, `only ${all} datagrams from the devices were captured`);
  assert.equal(coapOnes, all, 'every datagram from a device decodes as CoAP');
  // Every payload was handed to the dissector of its Content-Format (so "no malformed"
  // below covers the TLV, CBOR and JSON bytes, not just the CoAP header).
  for (const [types, layer, least] of [
    [['application/vnd.oma.lwm2m+tlv'], 'lwm2mtlv', 5],
    [['application/cbor', 'application/senml+cbor'], 'cbor', 5],
    [['application/senml+json', 'application/vnd.oma.lwm2m+json'], 'json', 5],
  ]) {
    const ofType = types.map((t) => `coap.opt.ctype == "${t}"`).join(' || ');
    const sent = tsharkCount(file, port, `${fromDevices} && coap.payload && (${ofType})`);
    const dissected = tsharkCount(file, port, `${fromDevices} && ${layer}`);
    assert.ok(sent >= least, `only ${sent} ${types.join('/')} payloads from the devices`);
    assert.equal(dissected, sent, `tshark's ${layer} dissector ran on ${dissected} of ${sent} payloads`);
  }
  if (bad !== 0) {
    const detail = execFileSync('tshark', ['-r', file, '-d', `udp.port==${port},coap`, '-V', '-Y',
      `${fromDevices} && (_ws.malformed || _ws.expert.severity >= "Warning")`], { encoding: 'utf8' });
    assert.fail(`tshark flags ${bad} datagrams:\n${detail.slice(0, 6000)}`);
  }
});
