// Unit checks of the device's codecs against byte vectors from the specifications
// (RFC 8949 Appendix A, TS 1.0 §6.4.3.1, RFC 8428 §6) and round trips through the model.
// runSelfCheck() returns the list of failures (empty when all pass).
import assert from 'node:assert/strict';
import * as cbor from './cbor.mjs';
import * as tlv from './tlv.mjs';
import { CF, decode, encode, parseSenml } from './formats.mjs';
import { CoapError, Model, parsePath } from './model.mjs';

const checks = [];
function check(name, fn) { checks.push([name, fn]); }

function h(text) { return Buffer.from(text.replace(/\s+/g, ''), 'hex'); }

check('CBOR encodes the RFC 8949 Appendix A examples', () => {
  const cases = [
    [0, '00'], [23, '17'], [24, '1818'], [100, '1864'], [1000, '1903e8'],
    [1000000, '1a000f4240'], [1000000000000, '1b000000e8d4a51000'],
    [18446744073709551615n, '1bffffffffffffffff'], [-1, '20'], [-100, '3863'], [-1000, '3903e7'],
    [new cbor.CborFloat(1.5), 'fa3fc00000'], [1.1, 'fb3ff199999999999a'], [false, 'f4'], [true, 'f5'],
    [null, 'f6'], ['', '60'], ['a', '6161'], ['\u00fc', '62c3bc'], [Buffer.of(1, 2, 3, 4), '4401020304'],
    [[1, [2, 3], [4, 5]], '8301820203820405'], [new Map([[1, 2], [3, 4]]), 'a201020304'],
  ];
  for (const [value, bytes] of cases) assert.equal(cbor.encode(value).toString('hex'), bytes, String(value));
});

check('CBOR decodes half floats, tags and indefinite lengths', () => {
  assert.equal(cbor.decode(h('f93e00')), 1.5);
  assert.equal(cbor.decode(h('f97c00')), Infinity);
  assert.equal(cbor.decode(h('f90001')), 5.960464477539063e-8);
  assert.equal(cbor.decode(h('c11a514b67b0')), 1363896240);  // tag 1, epoch time
  assert.deepEqual(cbor.decode(h('9f018202039f0405ffff')), [1, [2, 3], [4, 5]]);
  assert.deepEqual(cbor.decode(h('5f42010243030405ff')), Buffer.of(1, 2, 3, 4, 5));
  assert.equal(cbor.decode(h('7f657374726561646d696e67ff')), 'streaming');
  assert.deepEqual(cbor.decode(h('bf6346756ef563416d7421ff')), new Map([['Fun', true], ['Amt', -2]]));
  assert.equal(cbor.decode(h('3bfffffffffffffffe')), -18446744073709551615n);
});

check('CBOR rejects truncated, trailing and reserved input', () => {
  for (const bad of ['19 03', '62 61', '82 01', '00 00', '1c', 'a1 01 02 01', 'a2 01 02 01 03', '62 c3 28']) {
    assert.throws(() => cbor.decode(h(bad)), cbor.CborError, bad);
  }
  let deep = '';
  for (let i = 0; i < 40; i++) deep += '81';
  assert.throws(() => cbor.decode(h(`${deep}00`)), /deeply/);
});

// TS 1.0 §6.4.3.1: Read of /3/0 on the example device.
const kSpecDeviceTlv = h(`
  c8 00 14 4f70656e204d6f62696c6520416c6c69616e6365
  c8 01 16 4c69676874776569676874204d324d20436c69656e74
  c8 02 09 333435303030313233
  c3 03 312e30
  86 06 41 00 01 41 01 05
  88 07 08 42 00 0e d8 42 01 13 88
  87 08 41 00 7d 42 01 03 84
  c1 09 64
  c1 0a 0f
  83 0b 41 00 00
  c4 0d 51 82 42 8f
  c6 0e 2b30323a3030
  c1 10 55`);

check('TLV encodes the TS 1.0 §6.4.3.1 device example byte for byte', () => {
  const r = (id, type, value) => ({ id, type, multiple: value instanceof Map, value });
  const node = { level: 'instance', oid: 3, iid: 0, resources: [
    r(0, 'string', 'Open Mobile Alliance'), r(1, 'string', 'Lightweight M2M Client'),
    r(2, 'string', '345000123'), r(3, 'string', '1.0'), r(6, 'integer', new Map([[0, 1], [1, 5]])),
    r(7, 'integer', new Map([[0, 3800], [1, 5000]])), r(8, 'integer', new Map([[0, 125], [1, 900]])),
    r(9, 'integer', 100), r(10, 'integer', 15), r(11, 'integer', new Map([[0, 0]])),
    r(13, 'time', 1367491215), r(14, 'string', '+02:00'), r(16, 'string', 'U'),
  ] };
  assert.equal(encode(CF.TLV, node, '1.0').toString('hex'), kSpecDeviceTlv.toString('hex'));
});

check('TLV decodes the example and handles 16-bit ids and 24-bit lengths', () => {
  const entries = tlv.decode(kSpecDeviceTlv);
  assert.equal(entries.length, 13);
  assert.deepEqual(entries[4], { kind: 'multiple', id: 6, children: [
    { kind: 'rinstance', id: 0, value: Buffer.of(1) }, { kind: 'rinstance', id: 1, value: Buffer.of(5) }] });
  assert.equal(tlv.decodeValue('time', entries[10].value), 1367491215);
  const wide = tlv.encode([{ kind: 'resource', id: 1110, value: Buffer.of(7) }]);
  assert.equal(wide.toString('hex'), 'e1045607');
  const big = tlv.encode([{ kind: 'resource', id: 1, value: Buffer.alloc(70000, 0x41) }]);
  assert.equal(big.subarray(0, 5).toString('hex'), 'd801011170');
  assert.equal(tlv.decode(big)[0].value.length, 70000);
  for (const bad of ['c8 00 05 41', 'c1', 'c9 00 01 41', '08 00 03 41 00 01']) {
    assert.throws(() => tlv.decode(h(bad)), tlv.TlvError, bad);
  }
});

check('TLV values use the shortest integer and exact float width', () => {
  const hexOf = (type, v) => tlv.encodeValue(type, v).toString('hex');
  assert.equal(hexOf('integer', 127), '7f');
  assert.equal(hexOf('integer', 128), '0080');
  assert.equal(hexOf('integer', -129), 'ff7f');
  assert.equal(hexOf('integer', 2 ** 31), '0000000080000000');
  assert.equal(hexOf('float', 1.5), '3fc00000');
  assert.equal(hexOf('float', 3.14159), '400921f9f01b866e');
  assert.equal(hexOf('objlnk', '3:0'), '00030000');
  assert.equal(hexOf('boolean', true), '01');
  assert.equal(tlv.decodeValue('integer', h('ff7f')), -129);
  assert.throws(() => tlv.decodeValue('integer', h('000000')), tlv.TlvError);
  assert.throws(() => tlv.decodeValue('boolean', h('02')), tlv.TlvError);
});

check('SenML CBOR uses the RFC 8428 integer labels', () => {
  const model = new Model({ lifetime: 60, binding: 'U' });
  const bytes = encode(CF.SENML_CBOR, model.read([3, 0, 9]), '1.1');
  // [{-2: "/3/0/", 0: "9", 2: 87}]
  assert.equal(bytes.toString('hex'), '81a321652f332f302f006139021857');
  const float = encode(CF.SENML_CBOR, model.read([3441, 0, 130]), '1.1');
  assert.ok(float.includes(h('02fb400921f9f01b866e')), 'a Float resource is a CBOR float');
});

check('SenML JSON resolves base names and round-trips every type', () => {
  const model = new Model({ lifetime: 60, binding: 'U' });
  for (const format of [CF.SENML_JSON, CF.SENML_CBOR, CF.LWM2M_JSON, CF.TLV]) {
    const before = model.read([3441, 0]);
    const bytes = encode(format, before, '1.1');
    const { records, multiples } = decode(format, bytes, [3441, 0], model, '1.1');
    const fresh = new Model({ lifetime: 60, binding: 'U' });
    fresh.resetTestInstance(0, 'clear');
    fresh.write([3441, 0], records.filter((r) => r.path[2] !== 4), { replace: true, multiples });
    assert.deepEqual(fresh.toJSON()[3441], model.toJSON()[3441], `format ${format}`);
  }
  const recs = parseSenml(CF.SENML_JSON, Buffer.from(
    '[{"bn":"/3441/0/","n":"110","vs":"x"},{"n":"1150/1","vd":"AQI"},{"bn":"/3/0/","n":"9","v":1}]'));
  assert.deepEqual(recs.map((r) => r.name), ['/3441/0/110', '/3441/0/1150/1', '/3/0/9']);
  assert.deepEqual(recs[1].value, Buffer.of(1, 2));
});

check('writes refuse unknown resources (4.04), read-only ones (4.05) and bad values (4.00)', () => {
  const model = new Model({ lifetime: 60, binding: 'U' });
  const code = (fn) => { try { fn(); } catch (e) { if (e instanceof CoapError) return e.code; throw e; } return 'ok'; };
  const write = (format, body, path) => code(() => {
    const d = decode(format, Buffer.from(body), parsePath(path), model, '1.1');
    model.write(parsePath(path), d.records, { replace: false, multiples: d.multiples });
  });
  assert.equal(write(CF.SENML_JSON, '[{"n":"/3441/0/999","v":1}]', '/3441/0'), '4.04');
  assert.equal(write(CF.SENML_JSON, '[{"n":"/3/0/9","v":1}]', '/3/0'), '4.05');
  assert.equal(write(CF.SENML_JSON, '[{"n":"/3441/0/120","v":1.5}]', '/3441/0'), '4.00');
  assert.equal(write(CF.TEXT, 'abc', '/3441/0/120'), '4.00');
  assert.equal(write(CF.TEXT, '-42', '/3441/0/120'), 'ok');
  assert.equal(model.instance(3441, 0).get(120), -42);
  assert.equal(write(CF.TLV, h('c1 78 05'), '/3441/0/120'), 'ok');
  assert.equal(model.instance(3441, 0).get(120), 5);
  assert.equal(write(CF.TLV, h('c1 78'), '/3441/0/120'), '4.00');
  assert.equal(write(50, '{}', '/3441/0/120'), '4.15');
});

export function runSelfCheck() {
  const failures = [];
  for (const [name, fn] of checks) {
    try {
      fn();
    } catch (e) {
      failures.push(`${name}: ${e.message}`);
    }
  }
  return failures;
}

export const selfCheckNames = checks.map(([name]) => name);
