// One LwM2M client on the npm coap package: a coap.Server and a coap.Agent sharing one
// UDP socket, so that the server's requests reach the port the Register came from
// (TS 1.1 §6.2.1: the server addresses the client at the source of its registration).
import dgram from 'node:dgram';
import net from 'node:net';
import coap from 'coap';
import packet from 'coap-packet';
import { CF, decode, decodeComposite, decodeCompositePaths, discover, encode, encodeSenml, leaves,
  senmlRecordsFromLeaves } from './formats.mjs';
import { CoapError, Model, parsePath, pathString } from './model.mjs';
import { Attributes, Scheduler } from './observe.mjs';

const kMethods = { '0.01': 'GET', '0.02': 'POST', '0.03': 'PUT', '0.04': 'DELETE', '0.05': 'FETCH',
  '0.06': 'PATCH', '0.07': 'iPATCH' };
const kNumeric = new Set(['integer', 'unsigned integer', 'float', 'time']);

function uintOf(buf) {
  let v = 0;
  for (const b of buf) v = v * 256 + b;
  return v;
}

function hex(buf) {
  return buf ? Buffer.from(buf).toString('hex') : '';
}

// TS 1.1 §5.4.5: arglist = arg *("," arg); arg = DIGIT ["=" "'" *CHAR "'"], CHAR being
// printable ASCII without space, '"', "'" and '\'.
function parseExecArguments(text) {
  if (text === '') return [];
  const arg = /^(\d)(?:='([\x21\x23-\x26\x28-\x5b\x5d-\x7e]*)')?$/;
  return text.split(',').map((part) => {
    const m = arg.exec(part);
    if (!m) throw new CoapError('4.00', `bad Execute argument "${part}"`);
    return { digit: Number(m[1]), value: m[2] };
  });
}

export class Device {
  // opts: { host, port, endpoint, version, binding, lifetime, conNotify, requestTimeoutMs }
  // emit: called with each event object (the CLI prints them as JSON lines).
  constructor(opts, emit) {
    this.opts = { requestTimeoutMs: 30000, ...opts };
    this.emit = emit;
    this.version = opts.version ?? '1.1';
    this.queue = (opts.binding ?? 'U').includes('Q');
    this.model = new Model({ lifetime: opts.lifetime, binding: opts.binding ?? 'U' });
    this.attributes = new Attributes();
    this.observations = new Map();  // "address|port|token" → observation
    this.notifyMids = new Map();    // message id of a notification → observation
    this.recentRequests = new Map(); // "address|port|mid" → true, to flag retransmissions
    this.silentPaths = [];
    this.asleep = false;
    this.location = null;
    this.updateTimer = null;
    this.nextMid = Math.floor(Math.random() * 0x10000);
    this.current = null;
    this.scheduler = new Scheduler({
      attributes: (obs) => this.observationAttributes(obs),
      numeric: (obs) => this.observationNumeric(obs),
      notify: (obs) => this.notify(obs),
      asleep: () => this.asleep,
    });
    this.model.onChange = (path) => this.scheduler.changed(path);
  }

  async start() {
    const type = net.isIPv6(this.opts.host) ? 'udp6' : 'udp4';
    this.sock = dgram.createSocket({ type });
    await new Promise((resolve, reject) => {
      this.sock.once('error', reject);
      this.sock.bind(0, () => { this.sock.off('error', reject); resolve(); });
    });
    this.sock.on('error', (e) => this.emit({ event: 'error', what: 'socket', message: e.message }));
    this.installFilter();
    this.server = coap.createServer({ type });
    this.server.on('request', (req, res) => this.onRequest(req, res));
    this.server.on('error', (e) => this.emit({ event: 'error', what: 'coap server', message: e.message }));
    await new Promise((resolve) => this.server.listen(this.sock, resolve));
    this.agent = new coap.Agent({ socket: this.sock });
    this.agent.on('error', (e) => this.emit({ event: 'error', what: 'coap agent', message: e.message }));
    const addr = this.sock.address();
    this.emit({ event: 'listening', address: addr.address, port: addr.port });
  }

  // Every datagram passes here before the coap Server and Agent see it: queue-mode sleep
  // drops everything, silent paths are dropped unanswered, RSTs that answer a
  // notification cancel its observation, pings get their RST, and each request is
  // reported once (retransmissions flagged).
  installFilter() {
    const original = this.sock.emit.bind(this.sock);
    this.sock.emit = (name, ...args) => {
      if (name !== 'message') return original(name, ...args);
      const [msg, rinfo] = args;
      let pkt;
      try {
        pkt = packet.parse(msg);
      } catch (e) {
        this.emit({ event: 'error', what: 'unparseable datagram', message: e.message, hex: hex(msg) });
        return false;
      }
      if (this.asleep) {
        this.emit({ event: 'ignored', reason: 'asleep', code: pkt.code, mid: pkt.messageId });
        return false;
      }
      if (pkt.code === '0.00') {
        if (pkt.reset) this.onReset(pkt, rinfo);
        if (pkt.confirmable) {
          // RFC 7252 §4.3: an empty CON is a ping, answered with RST. Handled here so the
          // coap Server does not also ACK it as if it were a request.
          const rst = packet.generate({ code: '0.00', reset: true, messageId: pkt.messageId });
          this.sock.send(rst, rinfo.port, rinfo.address);
          this.emit({ event: 'ping', mid: pkt.messageId });
          return false;
        }
        return original(name, ...args);
      }
      if (!kMethods[pkt.code]) return original(name, ...args);  // a response: the Agent's
      const info = this.describe(pkt, rinfo);
      const key = `${rinfo.address}|${rinfo.port}|${pkt.messageId}`;
      const duplicate = this.recentRequests.has(key);
      this.recentRequests.set(key, true);
      if (this.recentRequests.size > 1000) this.recentRequests.delete(this.recentRequests.keys().next().value);
      const silent = info.path !== null && this.silentPaths.some((s) => s.every((seg, k) => info.path[k] === seg));
      this.emit({
        event: 'request', method: info.method, path: info.pathText, accept: info.accept,
        contentFormat: info.contentFormat, observe: info.observe, query: info.query,
        payloadHex: hex(pkt.payload), type: pkt.confirmable ? 'CON' : 'NON', mid: pkt.messageId,
        token: hex(pkt.token), ...(duplicate ? { duplicate: true } : {}), ...(silent ? { silent: true } : {}),
      });
      if (silent) return false;
      this.current = info;
      try {
        return original(name, ...args);
      } finally {
        this.current = null;
      }
    };
  }

  describe(pkt, rinfo) {
    const opts = pkt.options ?? [];
    const all = (n) => opts.filter((o) => o.name === n).map((o) => o.value);
    const one = (n) => { const v = all(n); return v.length ? uintOf(v[0]) : null; };
    const segments = all('Uri-Path').map((b) => b.toString('utf8'));
    // Each Uri-Path option is one segment (RFC 7252 §6.5): a '/' inside one is no separator.
    const numeric = segments.length <= 4 && segments.every((x) => /^\d{1,5}$/.test(x) && Number(x) <= 65535);
    const path = numeric ? segments.map(Number) : null;
    return {
      method: kMethods[pkt.code], code: pkt.code, path, pathText: `/${segments.join('/')}`,
      query: all('Uri-Query').map((b) => b.toString('utf8')), accept: one('Accept'),
      contentFormat: one('Content-Format'), observe: one('Observe'), token: pkt.token,
      mid: pkt.messageId, confirmable: pkt.confirmable, peer: rinfo,
    };
  }

  onReset(pkt, rinfo) {
    const obs = this.notifyMids.get(pkt.messageId);
    if (obs && obs.peer.address === rinfo.address && obs.peer.port === rinfo.port) {
      this.cancelObservation(obs, 'rst');
    }
  }

  // ---- Serving the server's requests ----

  onRequest(req, res) {
    const info = this.current;
    res.on('error', (e) => this.emit({ event: 'error', what: 'response', message: e.message }));
    if (!info) return;  // not a request we let through (cannot happen: the filter sees all)
    info.payload = req.payload ?? Buffer.alloc(0);
    let result;
    try {
      result = this.dispatch(info, res);
    } catch (e) {
      if (!(e instanceof CoapError)) {
        this.emit({ event: 'error', what: 'handler', message: e.stack });
        result = { code: '5.00', diagnostic: e.message };
      } else {
        result = { code: e.code, diagnostic: e.message };
      }
    }
    if (result.streaming) return;
    this.respond(res, info, result);
  }

  respond(res, info, { code, format, payload, location, diagnostic }) {
    res.code = code;
    res.statusCode = code;
    if (format !== undefined) res.setOption('Content-Format', format);
    if (location) res.setOption('Location-Path', location.map((s) => Buffer.from(String(s))));
    // RFC 7252 §5.5.2: a diagnostic payload explains an error to a human.
    const observeStream = res instanceof coap.ObserveWriteStream;
    const body = payload ?? (diagnostic && !observeStream ? Buffer.from(diagnostic) : undefined);
    this.emit({ event: 'response', method: info.method, path: info.pathText, code,
      contentFormat: format ?? null, payloadHex: hex(body), ...(diagnostic ? { diagnostic } : {}),
      ...(location ? { location: `/${location.join('/')}` } : {}) });
    if (observeStream) {
      // An Observe request refused: the error goes out without an Observe option.
      res.end();
    } else {
      res.end(body);
    }
  }

  dispatch(info, res) {
    const { method, path } = info;
    if (path === null) throw new CoapError('4.04', `no such path ${info.pathText}`);
    switch (method) {
      case 'GET':
        if (info.observe === 0) return this.observe(info, res, [path], false);
        if (info.observe === 1) this.cancelByToken(info, 'observe=1');
        if (info.accept === CF.LINK) {
          return { code: '2.05', format: CF.LINK, payload: discover(this.model, this.attributes, path, this.version) };
        }
        return this.read(info, path);
      case 'PUT':
        if (info.payload.length === 0 && info.contentFormat === null && info.query.length > 0) {
          this.attributes.apply(path, info.query, this.model, this.version);
          this.scheduler.rearm();
          return { code: '2.04' };
        }
        return this.write(info, path, true);
      case 'POST':
        if (path.length === 0) throw new CoapError('4.05', 'POST on the root is not offered');
        if (path.length === 1) return this.create(info, path);
        if (path.length === 3) {
          const def = this.model.check(path);
          if (def.ops.includes('E')) return this.execute(info, path);
          if (info.contentFormat === null) throw new CoapError('4.05', `${pathString(path)} is not executable`);
        }
        if (path.length === 4) throw new CoapError('4.05', 'POST on a resource instance is not offered');
        return this.write(info, path, false);
      case 'DELETE':
        this.model.delete(path);
        this.emit({ event: 'deleted', path: pathString(path) });
        this.scheduleObjectsUpdate();
        return { code: '2.02' };
      case 'FETCH':
        this.need11('FETCH');
        if (path.length !== 0) throw new CoapError('4.05', 'composite operations address the root path');
        if (info.observe === 0) {
          return this.observe(info, res, decodeCompositePaths(info.contentFormat, info.payload), true);
        }
        if (info.observe === 1) this.cancelByToken(info, 'observe=1');
        return this.readComposite(info, decodeCompositePaths(info.contentFormat, info.payload));
      case 'iPATCH': {
        this.need11('iPATCH');
        if (path.length !== 0) throw new CoapError('4.05', 'composite operations address the root path');
        this.writeComposite(info);
        return { code: '2.04' };
      }
      default:
        throw new CoapError('4.05', `${method ?? info.code} is not an LwM2M operation`);
    }
  }

  need11(what) {
    if (this.version === '1.0') throw new CoapError('4.05', `${what} is an LwM2M 1.1 operation`);
  }

  readFormat(info) {
    return info.accept ?? CF.TLV;
  }

  read(info, path) {
    const format = this.readFormat(info);
    const node = this.model.read(path);
    return { code: '2.05', format, payload: encode(format, node, this.version) };
  }

  // Read-Composite (TS 1.1 §5.4.7): the values of every path that exists; paths that do
  // not are left out, and 4.04 only when none does.
  compositePayload(paths, format) {
    if (format !== CF.SENML_JSON && format !== CF.SENML_CBOR) {
      throw new CoapError('4.06', 'composite results are SenML JSON or SenML CBOR');
    }
    const list = [];
    for (const p of paths) {
      try {
        list.push(...leaves(this.model.read(p)));
      } catch (e) {
        if (!(e instanceof CoapError)) throw e;
      }
    }
    if (list.length === 0) throw new CoapError('4.04', 'none of the paths exists');
    return encodeSenml(format, senmlRecordsFromLeaves(list, undefined));
  }

  readComposite(info, paths) {
    const format = info.accept ?? info.contentFormat;
    return { code: '2.05', format, payload: this.compositePayload(paths, format) };
  }

  write(info, path, replace) {
    if (path.length < 2) throw new CoapError('4.05', `Write on ${pathString(path)} is not offered`);
    this.model.check(path);
    const decoded = decode(info.contentFormat, info.payload, path, this.model, this.version);
    const changed = this.model.write(path, decoded.records, { replace, multiples: decoded.multiples });
    this.afterServerWrite(changed);
    return { code: '2.04' };
  }

  writeComposite(info) {
    const { records } = decodeComposite(info.contentFormat, info.payload, this.model);
    const byInstance = new Map();
    for (const r of records) {
      const key = `${r.path[0]}/${r.path[1]}`;
      if (!byInstance.has(key)) byInstance.set(key, []);
      byInstance.get(key).push(r);
    }
    // TS 1.1 §5.4.8: all or nothing — check every instance's records before applying any.
    for (const recs of byInstance.values()) this.model.validateWrite(recs[0].path.slice(0, 2), recs);
    const changed = [];
    for (const recs of byInstance.values()) {
      changed.push(...this.model.applyWrite(recs[0].path.slice(0, 2), recs, { replace: false }));
    }
    this.afterServerWrite(changed);
  }

  // Writes to the server object change what the registration says (TS 1.1 §6.2.2: the
  // client sends an Update when Lifetime or Binding change).
  afterServerWrite(changed) {
    const params = {};
    for (const [oid, iid, rid] of changed) {
      if (oid === 1 && iid === 0 && rid === 1) params.lt = this.model.instance(1, 0).get(1);
      if (oid === 1 && iid === 0 && rid === 7) params.b = this.model.instance(1, 0).get(7);
    }
    if (Object.keys(params).length > 0 && this.location) setImmediate(() => this.update(params));
  }

  create(info, path) {
    const decoded = decode(info.contentFormat, info.payload, path, this.model, this.version);
    const iid = this.model.create(path[0], decoded.instanceId, decoded.records);
    this.emit({ event: 'created', path: `/${path[0]}/${iid}` });
    this.scheduleObjectsUpdate();
    return { code: '2.01', location: [path[0], iid] };
  }

  execute(info, path) {
    if (info.contentFormat !== null && info.contentFormat !== CF.TEXT) {
      throw new CoapError('4.15', 'Execute arguments are text/plain');
    }
    const text = info.payload.toString('utf8');
    const args = parseExecArguments(text);
    const [oid, iid, rid] = path;
    this.emit({ event: 'executed', path: pathString(path), args: text });
    if (oid === 3441 && rid === 3) this.model.setArguments(iid, args);
    if (oid === 3441 && rid === 0) this.model.resetTestInstance(iid, 'reset');
    if (oid === 3441 && rid === 1) this.model.resetTestInstance(iid, 'randomize');
    if (oid === 3441 && rid === 2) this.model.resetTestInstance(iid, 'clear');
    if (oid === 3 && rid === 12) this.model.setFromCommand([3, 0, 11], { 0: 0 });
    if (oid === 1 && rid === 8) setImmediate(() => this.update({}));
    return { code: '2.04' };
  }

  // ---- Observe (RFC 7641, TS 1.1 §5.5) ----

  observationKey(peer, token) {
    return `${peer.address}|${peer.port}|${hex(token)}`;
  }

  observe(info, res, paths, composite) {
    const format = composite ? (info.accept ?? info.contentFormat) : this.readFormat(info);
    const body = () => (composite ? this.compositePayload(paths, format)
      : encode(format, this.model.read(paths[0]), this.version));
    const payload = body();
    const key = this.observationKey(info.peer, info.token);
    const old = this.observations.get(key);
    if (old) this.cancelObservation(old, 'replaced');
    const obs = { key, token: hex(info.token), peer: info.peer, paths, composite, format, body,
      stream: res, path: composite ? paths.map(pathString) : pathString(paths[0]) };
    this.observations.set(key, obs);
    res.statusCode = '2.05';
    res.setOption('Content-Format', format);
    res.write(payload);
    // The coap Server ends the stream when a CON notification times out or is reset.
    res.on('finish', () => this.cancelObservation(obs, 'ended'));
    this.emit({ event: 'response', method: info.method, path: info.pathText, code: '2.05',
      contentFormat: format, payloadHex: hex(payload), observe: res._counter });
    this.emit({ event: 'observed', path: obs.path, token: obs.token, composite, format });
    this.scheduler.start(obs);
    return { streaming: true };
  }

  observationAttributes(obs) {
    if (!obs.composite) return this.attributes.effective(obs.paths[0], this.model);
    // A composite observation waits for the longest pmin and the shortest pmax of its
    // paths.
    const all = obs.paths.map((p) => this.attributes.effective(p, this.model));
    const pmins = all.map((a) => a.pmin).filter((v) => v !== undefined);
    const pmaxs = all.map((a) => a.pmax).filter((v) => v !== undefined && v > 0);
    return { pmin: pmins.length ? Math.max(...pmins) : undefined, pmax: pmaxs.length ? Math.min(...pmaxs) : undefined };
  }

  observationNumeric(obs) {
    if (obs.composite || obs.paths[0].length < 3) return undefined;
    try {
      const node = this.model.read(obs.paths[0]);
      const v = node.level === 'rinstance' ? node.value : node.resource.value;
      const type = node.level === 'rinstance' ? node.type : node.resource.type;
      return kNumeric.has(type) && typeof v === 'number' ? v : undefined;
    } catch {
      return undefined;
    }
  }

  // Sends one notification; its type follows --con-notify (NON by default, TS 1.1 §6.4.2
  // leaves it to the client), with a message id of our own so that an RST can be matched.
  notify(obs) {
    const stream = obs.stream;
    if (stream.writableEnded || stream.destroyed) {
      this.cancelObservation(obs, 'ended');
      return false;
    }
    const mid = this.nextMid = (this.nextMid + 1) & 0xffff;
    stream._packet.confirmable = Boolean(this.opts.conNotify);
    stream._packet.ack = false;
    stream._packet.reset = false;
    stream._packet.messageId = mid;
    this.notifyMids.set(mid, obs);
    if (this.notifyMids.size > 500) this.notifyMids.delete(this.notifyMids.keys().next().value);
    let payload;
    try {
      payload = obs.body();
    } catch (e) {
      // The observed path went away (RFC 7641 §3.2: an error ends the observation). The
      // error response carries no Observe option.
      const code = e instanceof CoapError ? e.code : '5.00';
      stream.statusCode = code;
      stream._packet.options = stream._packet.options.filter(
        (o) => o.name !== 'Observe' && o.name !== 'Content-Format');
      stream._doSend();
      this.emit({ event: 'notified', path: obs.path, token: obs.token, code, mid,
        confirmable: Boolean(this.opts.conNotify) });
      this.cancelObservation(obs, code);
      return false;
    }
    stream.write(payload);
    this.emit({ event: 'notified', path: obs.path, token: obs.token, seq: stream._counter, mid,
      confirmable: Boolean(this.opts.conNotify), contentFormat: obs.format, payloadHex: hex(payload) });
    return true;
  }

  cancelByToken(info, reason) {
    const obs = this.observations.get(this.observationKey(info.peer, info.token));
    if (obs) this.cancelObservation(obs, reason);
  }

  cancelObservation(obs, reason) {
    if (this.observations.get(obs.key) !== obs) return;
    this.observations.delete(obs.key);
    this.scheduler.stop(obs);
    if (!obs.stream.writableEnded) obs.stream.end();
    this.emit({ event: 'observe-cancelled', path: obs.path, token: obs.token, reason });
  }

  cancelAllObservations(reason) {
    for (const obs of [...this.observations.values()]) this.cancelObservation(obs, reason);
  }

  // ---- Requests to the server (registration interface, Send) ----

  request({ method, pathname, query = [], format, payload }) {
    return new Promise((resolve) => {
      const options = {};
      if (format !== undefined) options['Content-Format'] = format;
      const req = this.agent.request({ hostname: this.opts.host, port: this.opts.port, method, pathname,
        query: query.join('&'), options, confirmable: true });
      const timer = setTimeout(() => {
        this.agent.abort(req);
        resolve({ code: null, error: 'timeout' });
      }, this.opts.requestTimeoutMs);
      req.on('response', (res) => {
        clearTimeout(timer);
        const location = (res.options ?? []).filter((o) => o.name === 'Location-Path').map((o) => String(o.value));
        resolve({ code: res.code, location, payload: res.payload ?? Buffer.alloc(0) });
        res.resume?.();
      });
      req.on('error', (e) => { clearTimeout(timer); resolve({ code: null, error: e.message }); });
      req.end(payload);
    });
  }

  objectLinks() {
    const links = [];
    // TS 1.1 §6.2.1: the root link says which content formats the client offers.
    if (this.version !== '1.0') links.push('</>;rt="oma.lwm2m";ct="60 110 112 11542 11543"');
    for (const oid of [...this.model.objects.keys()].sort((a, b) => a - b)) {
      for (const iid of this.model.instanceIds(oid)) links.push(`</${oid}/${iid}>`);
    }
    return links.join(',');
  }

  bindingQuery(binding) {
    // TS 1.0 writes queue mode into the binding ("UQ"); TS 1.1 §6.2.1 moves it into a
    // separate "Q" parameter.
    if (this.version === '1.0') return [`b=${binding}`];
    const transports = binding.replace('Q', '');
    return binding.includes('Q') ? [`b=${transports}`, 'Q'] : [`b=${transports}`];
  }

  async register() {
    this.cancelAllObservations('register');
    const lifetime = this.model.instance(1, 0).get(1);
    const query = [`ep=${this.opts.endpoint}`, `lt=${lifetime}`, `lwm2m=${this.version}`,
      ...this.bindingQuery(this.model.instance(1, 0).get(7))];
    const r = await this.request({ method: 'POST', pathname: '/rd', query, format: CF.LINK,
      payload: Buffer.from(this.objectLinks()) });
    if (r.code === '2.01') {
      this.location = `/${r.location.join('/')}`;
      this.emit({ event: 'registered', location: this.location, code: r.code });
      this.scheduleUpdate();
    } else {
      this.emit({ event: 'register-failed', code: r.code, error: r.error, payload: r.payload?.toString() });
    }
    return r;
  }

  scheduleUpdate() {
    clearTimeout(this.updateTimer);
    const lifetime = this.model.instance(1, 0).get(1);
    // Half the lifetime: well inside it even after retransmissions.
    // A queue-mode client goes online for its Update (TS 1.1 §6.5), so asleep the timer
    // wakes the device.
    this.updateTimer = setTimeout(() => (this.asleep ? this.wake() : this.update({})),
      Math.max(1, lifetime / 2) * 1000);
  }

  scheduleObjectsUpdate() {
    if (this.location) setImmediate(() => this.update({ objects: true }));
  }

  async update({ lt, b, objects } = {}) {
    if (!this.location) {
      this.emit({ event: 'error', what: 'update', message: 'not registered' });
      return null;
    }
    const query = [];
    if (lt !== undefined) query.push(`lt=${lt}`);
    if (b !== undefined) query.push(...this.bindingQuery(b));
    const r = await this.request({ method: 'POST', pathname: this.location, query,
      format: objects ? CF.LINK : undefined, payload: objects ? Buffer.from(this.objectLinks()) : undefined });
    this.emit({ event: 'updated', code: r.code, query, ...(objects ? { objects: true } : {}),
      ...(r.error ? { error: r.error } : {}) });
    if (r.code === '2.04') {
      this.scheduleUpdate();
    } else if (r.code === '4.04') {
      // TS 1.1 §6.2.2: the server forgot the registration — register again.
      this.location = null;
      await this.register();
    }
    return r;
  }

  async deregister() {
    clearTimeout(this.updateTimer);
    if (!this.location) {
      this.emit({ event: 'error', what: 'deregister', message: 'not registered' });
      return null;
    }
    const r = await this.request({ method: 'DELETE', pathname: this.location });
    this.emit({ event: 'deregistered', code: r.code, ...(r.error ? { error: r.error } : {}) });
    this.location = null;
    this.cancelAllObservations('deregister');
    return r;
  }

  // LwM2M 1.1 Send (TS 1.1 §6.4.3): POST /dp with SenML records of full paths.
  async send(paths, formatName) {
    if (this.version === '1.0') {
      this.emit({ event: 'error', what: 'send', message: 'Send is an LwM2M 1.1 operation' });
      return null;
    }
    const format = formatName === 'senml-json' ? CF.SENML_JSON : CF.SENML_CBOR;
    const list = paths.flatMap((p) => leaves(this.model.read(parsePath(p))));
    const payload = encodeSenml(format, senmlRecordsFromLeaves(list, undefined));
    const r = await this.request({ method: 'POST', pathname: '/dp', format, payload });
    this.emit({ event: 'sent', code: r.code, format, payloadHex: hex(payload),
      ...(r.error ? { error: r.error } : {}) });
    return r;
  }

  sleep() {
    this.asleep = true;
    this.emit({ event: 'sleeping' });
  }

  async wake() {
    this.asleep = false;
    this.emit({ event: 'awake' });
    // TS 1.1 §6.5: a queue-mode client announces it is reachable with an Update, then
    // sends what it held back.
    const r = await this.update({});
    this.scheduler.flush();
    return r;
  }

  state() {
    return {
      event: 'state', location: this.location, asleep: this.asleep,
      objects: this.model.toJSON(), attributes: this.attributes.toJSON(),
      observations: [...this.observations.values()].map((o) => ({
        path: o.path, token: o.token, composite: o.composite, format: o.format,
        peer: `${o.peer.address}:${o.peer.port}`, seq: o.stream._counter,
      })),
      silent: this.silentPaths.map(pathString),
    };
  }

  // Handles one stdin command object; resolves when its effect is done.
  async command(cmd) {
    switch (cmd.cmd) {
      case 'set': {
        const path = parsePath(cmd.path);
        const changed = this.model.setFromCommand(path, cmd.value);
        this.emit({ event: 'set', path: pathString(path), changed });
        return;
      }
      case 'register': await this.register(); return;
      case 'update':
        if (cmd.lifetime !== undefined) {
          if (!Number.isInteger(cmd.lifetime) || cmd.lifetime < 1) {
            throw new CoapError('4.00', 'lifetime must be a positive integer');
          }
          this.model.instance(1, 0).set(1, cmd.lifetime);
        }
        await this.update({ lt: cmd.lifetime, objects: cmd.objects });
        return;
      case 'deregister': await this.deregister(); return;
      case 'sleep': this.sleep(); return;
      case 'wake': await this.wake(); return;
      case 'send': await this.send(cmd.paths ?? [], cmd.format ?? 'senml-cbor'); return;
      case 'silent':
        this.silentPaths = (cmd.paths ?? []).map(parsePath);
        this.emit({ event: 'silent', paths: this.silentPaths.map(pathString) });
        return;
      case 'dump': this.emit(this.state()); return;
      default:
        throw new CoapError('4.00', `unknown command ${cmd.cmd}`);
    }
  }

  close() {
    clearTimeout(this.updateTimer);
    for (const obs of this.observations.values()) this.scheduler.stop(obs);
    try { this.server.close(); } catch { /* already closed */ }
    try { this.sock.close(); } catch { /* already closed */ }
  }
}
