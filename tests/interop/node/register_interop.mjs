// The LwM2M registration interface driven by the npm coap package.
//   node register_interop.mjs HOST PORT            the node:test suite
//   node register_interop.mjs HOST PORT register-many N FILE
//        registers N endpoints concurrently and appends "name location" to FILE as each
//        2.01 arrives (the crash test kills the server right after)
//   node register_interop.mjs HOST PORT update-all FILE
//        sends an Update to every location in FILE; exits non-zero unless all get 2.04
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import coap from 'coap';

const [host, port, mode] = [process.argv[2], Number(process.argv[3]), process.argv[4]];

function agent() {
  return new coap.Agent({ type: host.includes(':') ? 'udp6' : 'udp4' });
}

function request(options, body, useAgent = undefined) {
  return new Promise((resolve, reject) => {
    const req = coap.request({ hostname: host, port, agent: useAgent ?? agent(), ...options });
    const timer = setTimeout(() => reject(new Error(`no response to ${options.pathname}`)), 15000);
    req.on('response', (res) => {
      clearTimeout(timer);
      const location = res.options
        .filter((o) => o.name === 'Location-Path')
        .map((o) => o.value.toString());
      resolve({ code: res.code, location, payload: res.payload.toString() });
      res.resume();
    });
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.end(body);
  });
}

function register(query, links = '</1/0>,</3/0>', useAgent = undefined) {
  return request({ method: 'POST', pathname: '/rd', query, options: { 'Content-Format': 40 } },
    links, useAgent);
}

if (mode === 'register-many') {
  const count = Number(process.argv[5]);
  const file = process.argv[6];
  const out = fs.openSync(file, 'a');
  const shared = agent();
  let acked = 0;
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    const name = `crash-${i}`;
    const res = await register(`ep=${name}&lt=3600&lwm2m=1.1`, '</1/0>,</3/0>', shared);
    if (res.code !== '2.01') throw new Error(`${name}: ${res.code} ${res.payload}`);
    fs.writeSync(out, `${name} /${res.location.join('/')}\n`);
    acked++;
  }));
  fs.closeSync(out);
  console.log(`acked ${acked}`);
  process.exit(0);
} else if (mode === 'update-all') {
  const lines = fs.readFileSync(process.argv[5], 'utf8').trim().split('\n');
  const shared = agent();
  const codes = await Promise.all(lines.map(async (line) => {
    const [, location] = line.split(' ');
    const res = await request({ method: 'POST', pathname: location }, undefined, shared);
    return res.code;
  }));
  const bad = codes.filter((c) => c !== '2.04');
  console.log(`updated ${codes.length - bad.length} of ${codes.length}`);
  process.exit(bad.length === 0 ? 0 : 1);
} else {
  test('Register, Update, Update with objects, De-register', async () => {
    const a = agent();
    const created = await register(
      'ep=npm-dev&lt=120&lwm2m=1.1&b=U', '</>;rt="oma.lwm2m";ct="60 110 112 11542 11543",</1/0>,</3/0>,</3303>;ver=1.1', a);
    assert.equal(created.code, '2.01');
    assert.equal(created.location.length, 2);
    assert.equal(created.location[0], 'rd');
    const location = `/rd/${created.location[1]}`;
    assert.equal((await request({ method: 'POST', pathname: location, query: 'lt=300' }, undefined, a)).code, '2.04');
    assert.equal((await request({ method: 'POST', pathname: location }, undefined, a)).code, '2.04');
    assert.equal((await request({ method: 'POST', pathname: location, options: { 'Content-Format': 40 } },
      '</1/0>,</3/0>,</5/0>', a)).code, '2.04');
    assert.equal((await request({ method: 'DELETE', pathname: location }, undefined, a)).code, '2.02');
    assert.equal((await request({ method: 'POST', pathname: location }, undefined, a)).code, '4.04');
    assert.equal((await request({ method: 'DELETE', pathname: location }, undefined, a)).code, '4.04');
  });

  test('1.0 client with the 1.0 binding form and alternate path', async () => {
    const res = await register('ep=npm-v10&lt=60&lwm2m=1.0&b=UQ', '</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>');
    assert.equal(res.code, '2.01');
  });

  test('a client asking for 1.2 is told 4.12 and registers with 1.1', async () => {
    const a = agent();
    const newer = await register('ep=npm-fallback&lwm2m=1.2', '</1/0>', a);
    assert.equal(newer.code, '4.12');
    const older = await register('ep=npm-fallback&lwm2m=1.1', '</1/0>', a);
    assert.equal(older.code, '2.01');
  });

  test('bad registrations get 4.00 with a diagnostic', async () => {
    for (const [query, links] of [
      ['lt=60', '</1/0>'],                  // no endpoint name
      ['ep=bad&lt=x', '</1/0>'],            // lifetime not a number
      ['ep=bad&lt=99999999999', '</1/0>'],  // lifetime out of range
      ['ep=bad', '</1/0>,</3/0'],           // link not closed
      ['ep=bad', '</70000/0>'],             // object id out of range
      ['ep=bad&b=X', '</1/0>'],             // unknown binding
    ]) {
      const res = await register(query, links);
      assert.equal(res.code, '4.00', `${query} ${links}`);
      assert.ok(res.payload.length > 0, `diagnostic for ${query} ${links}`);
    }
  });

  test('a second Register under the same name replaces the first', async () => {
    const first = await register('ep=npm-twice&lt=60', '</1/0>', agent());
    const second = await register('ep=npm-twice&lt=60', '</1/0>', agent());
    assert.equal(first.code, '2.01');
    assert.equal(second.code, '2.01');
    assert.notEqual(first.location[1], second.location[1]);
    assert.equal((await request({ method: 'POST', pathname: `/rd/${first.location[1]}` })).code, '4.04');
    assert.equal((await request({ method: 'POST', pathname: `/rd/${second.location[1]}` })).code, '2.04');
  });
}
