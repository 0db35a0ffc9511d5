// Drives lwm2md with the npm coap package (and its coap-packet codec for hand-made
// datagrams). Usage: node coap_interop.mjs HOST PORT
import test from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import coap from 'coap';
import packet from 'coap-packet';

const [host, port] = [process.argv[2], Number(process.argv[3])];
const agent = new coap.Agent({ type: host.includes(':') ? 'udp6' : 'udp4' });

function request(options, body) {
  return new Promise((resolve, reject) => {
    const req = coap.request({ hostname: host, port, agent, ...options });
    const timer = setTimeout(() => reject(new Error(`no response to ${options.pathname}`)), 10000);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ code: res.code, headers: res.headers, body: Buffer.concat(chunks), res });
      });
    });
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    if (options.block1) req.setOption('Block1', Buffer.of(options.block1));
    req.end(body);
  });
}

// Sends raw bytes from a fresh socket and collects the datagrams that come back.
function exchangeRaw(bytes, { wantReplies = 1, waitMs = 1500 } = {}) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const replies = [];
    const done = () => { sock.close(); resolve(replies); };
    const timer = setTimeout(done, waitMs);
    sock.on('message', (msg) => {
      replies.push(msg);
      if (replies.length >= wantReplies) { clearTimeout(timer); done(); }
    });
    for (const b of [].concat(bytes)) sock.send(b, port, host);
  });
}

test('GET /.well-known/core answers RFC 6690 link format', async () => {
  const r = await request({ pathname: '/.well-known/core' });
  assert.equal(r.code, '2.05');
  assert.equal(r.headers['Content-Format'], 'application/link-format');
  assert.match(r.body.toString(), /<\/diag>/);
});

test('Block2: a GET of more than 4 KiB reassembles', async () => {
  const r = await request({ pathname: '/diag' });
  assert.equal(r.code, '2.05');
  assert.ok(r.body.length > 4096, `got ${r.body.length} bytes`);
});

test('Block1: a 5000-byte PUT in 256-byte blocks reads back intact', async () => {
  const body = Buffer.alloc(5000);
  for (let i = 0; i < body.length; i++) body[i] = 0x41 + (i * 7) % 26;
  const put = await request({ pathname: '/diag', method: 'PUT', block1: 0x04 }, body);
  assert.equal(put.code, '2.04');
  const get = await request({ pathname: '/diag' });
  assert.equal(get.code, '2.05');
  assert.ok(get.body.equals(body), 'body read back differs');
});

test('NON request gets a NON response', async () => {
  const r = await request({ pathname: '/.well-known/core', confirmable: false });
  assert.equal(r.code, '2.05');
  assert.equal(r.res._packet.confirmable, false);
  assert.equal(r.res._packet.ack, false);
});

test('unknown path answers 4.04 and a wrong method 4.05', async () => {
  assert.equal((await request({ pathname: '/no/such/thing' })).code, '4.04');
  assert.equal((await request({ pathname: '/.well-known/core', method: 'DELETE' })).code, '4.05');
});

test('empty CON (ping) is answered with RST carrying its message id', async () => {
  const ping = packet.generate({ confirmable: true, code: '0.00', messageId: 4242 });
  const [reply] = await exchangeRaw(ping);
  assert.ok(reply, 'no reply to ping');
  const p = packet.parse(reply);
  assert.equal(p.reset, true);
  assert.equal(p.messageId, 4242);
});

test('duplicate CON gets the same response bytes', async () => {
  const req = packet.generate({
    confirmable: true, code: 'GET', messageId: 777, token: Buffer.from('dupe'),
    options: [{ name: 'Uri-Path', value: Buffer.from('.well-known') },
              { name: 'Uri-Path', value: Buffer.from('core') }],
  });
  const replies = await exchangeRaw([req, req], { wantReplies: 2 });
  assert.equal(replies.length, 2);
  assert.ok(replies[0].equals(replies[1]), 'duplicate answered differently');
});

test('unknown critical option answers 4.02 Bad Option', async () => {
  const req = packet.generate({
    confirmable: true, code: 'GET', messageId: 900, token: Buffer.from('crit'),
    options: [{ name: 'Uri-Path', value: Buffer.from('diag') },
              { name: '2049', value: Buffer.from('x') }],
  });
  const [reply] = await exchangeRaw(req);
  assert.ok(reply, 'no reply');
  assert.equal(packet.parse(reply).code, '4.02');
});

test('malformed CON (token length 9) is rejected with RST', async () => {
  const bad = Buffer.from([0x49, 0x01, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const [reply] = await exchangeRaw(bad);
  assert.ok(reply, 'no reply');
  const p = packet.parse(reply);
  assert.equal(p.reset, true);
  assert.equal(p.messageId, 0x1234);
});

test('malformed NON is dropped silently', async () => {
  const bad = Buffer.from([0x59, 0x01, 0x12, 0x35, 1, 2, 3]);
  const replies = await exchangeRaw(bad, { waitMs: 500 });
  assert.equal(replies.length, 0);
});
