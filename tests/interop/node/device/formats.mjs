// LwM2M content formats of the device: encoding what the model reads, decoding what the
// server writes. TS 1.0 §6.4 (text, opaque, TLV, LwM2M JSON) and TS 1.1 §7.4 (adds CBOR,
// SenML JSON and SenML CBOR, RFC 8428).
import * as cbor from './cbor.mjs';
import * as tlv from './tlv.mjs';
import { CoapError, parsePath, pathString } from './model.mjs';

export const CF = {
  TEXT: 0, LINK: 40, OPAQUE: 42, CBOR: 60, SENML_JSON: 110, SENML_CBOR: 112, TLV: 11542,
  LWM2M_JSON: 11543,
};

// TS 1.0 knows text, opaque, TLV and its JSON; TS 1.1 adds CBOR and SenML.
export function valueFormats(version) {
  return version === '1.0' ? [CF.TEXT, CF.OPAQUE, CF.TLV, CF.LWM2M_JSON]
    : [CF.TEXT, CF.OPAQUE, CF.CBOR, CF.SENML_JSON, CF.SENML_CBOR, CF.TLV, CF.LWM2M_JSON];
}

// Wraps a decoder's own exception as 4.00 (undecodable payload); 4.04/4.05 pass through.
function bad(what) {
  return (e) => {
    if (e instanceof CoapError) throw e;
    throw new CoapError('4.00', `${what}: ${e.message}`);
  };
}

// ---- Leaves: the (path, type, value) triples of a read subtree ----

function resourceLeaves(prefix, r) {
  if (!r.multiple) return [{ path: [...prefix, r.id], type: r.type, value: r.value }];
  return [...r.value].map(([ri, v]) => ({ path: [...prefix, r.id, ri], type: r.type, value: v }));
}

export function leaves(node) {
  switch (node.level) {
    case 'object':
      return node.instances.flatMap((i) => i.resources.flatMap((r) => resourceLeaves([node.oid, i.iid], r)));
    case 'instance':
      return node.resources.flatMap((r) => resourceLeaves([node.oid, node.iid], r));
    case 'resource':
      return resourceLeaves([node.oid, node.iid], node.resource);
    default:
      return [{ path: [node.oid, node.iid, node.rid, node.riid], type: node.type, value: node.value }];
  }
}

// The SenML / LwM2M JSON base name of a read: the object or instance path, ending in '/'
// so that names are "i/r", "r" or "r/ri" (TS 1.1 §7.4.4 examples).
function baseName(node) {
  return node.level === 'object' ? `/${node.oid}/` : `/${node.oid}/${node.iid}/`;
}

// ---- Single values: text, opaque, CBOR ----

function singleValue(node) {
  if (node.level === 'rinstance') return { type: node.type, value: node.value };
  if (node.level === 'resource' && !node.resource.multiple) {
    return { type: node.resource.type, value: node.resource.value };
  }
  throw new CoapError('4.06',
    'this content format carries a single value: read a single resource or a resource instance');
}

function textOf(type, v, version) {
  switch (type) {
    case 'boolean': return v ? '1' : '0';
    case 'opaque':
      // TS 1.1 §7.4.1: opaque as plain text is base64; TS 1.0 has no text form for it.
      if (version === '1.0') throw new CoapError('4.06', 'opaque has no plain text form in LwM2M 1.0');
      return v.toString('base64');
    default: return String(v);
  }
}

function cborOf(type, v) {
  if (type === 'float') return new cbor.CborFloat(v);
  return v;
}

// ---- Encoders ----

function tlvResource(r) {
  if (!r.multiple) return { kind: 'resource', id: r.id, value: tlv.encodeValue(r.type, r.value) };
  return { kind: 'multiple', id: r.id, children: [...r.value].map(([ri, v]) => (
    { kind: 'rinstance', id: ri, value: tlv.encodeValue(r.type, v) })) };
}

function encodeTlv(node) {
  switch (node.level) {
    case 'object':
      return tlv.encode(node.instances.map(
        (i) => ({ kind: 'instance', id: i.iid, children: i.resources.map(tlvResource) })));
    case 'instance':
      return tlv.encode(node.resources.map(tlvResource));
    case 'resource':
      return tlv.encode([tlvResource(node.resource)]);
    default:
      return tlv.encode([{ kind: 'rinstance', id: node.riid, value: tlv.encodeValue(node.type, node.value) }]);
  }
}

// SenML records (RFC 8428) as plain objects with the JSON labels; the CBOR encoder maps
// the labels to their integer keys (RFC 8428 §6, Table 6). "vlo" (object link) is the
// LwM2M extension label of TS 1.1 §7.4.5, a text key in both encodings.
function senmlRecord(name, type, v) {
  const rec = { n: name };
  switch (type) {
    case 'string': rec.vs = v; break;
    case 'boolean': rec.vb = v; break;
    case 'opaque': rec.vd = v; break;
    case 'objlnk': rec.vlo = v; break;
    default: rec.v = v; rec.float = type === 'float'; break;
  }
  return rec;
}

export function senmlRecordsFromLeaves(list, base) {
  return list.map((leaf, k) => {
    const full = pathString(leaf.path);
    const rec = senmlRecord(base === undefined ? full : full.slice(base.length), leaf.type, leaf.value);
    if (k === 0 && base !== undefined) rec.bn = base;
    return rec;
  });
}

const kSenmlCborKeys = { bn: -2, n: 0, v: 2, vs: 3, vb: 4, vd: 8, vlo: 'vlo' };

export function encodeSenml(format, records) {
  if (format === CF.SENML_JSON) {
    return Buffer.from(JSON.stringify(records.map((r) => {
      const o = {};
      if (r.bn !== undefined) o.bn = r.bn;
      o.n = r.n;
      for (const k of ['v', 'vs', 'vb', 'vlo']) if (r[k] !== undefined) o[k] = r[k];
      // RFC 8428 §5: vd is base64url without padding in SenML JSON.
      if (r.vd !== undefined) o.vd = r.vd.toString('base64url');
      return o;
    })));
  }
  return cbor.encode(records.map((r) => {
    const m = new Map();
    for (const k of ['bn', 'n', 'v', 'vs', 'vb', 'vd', 'vlo']) {
      if (r[k] === undefined) continue;
      m.set(kSenmlCborKeys[k], k === 'v' && r.float ? new cbor.CborFloat(r.v) : r[k]);
    }
    return m;
  }));
}

function encodeLwm2mJson(node) {
  const base = baseName(node);
  const e = leaves(node).map((leaf) => {
    const o = { n: pathString(leaf.path).slice(base.length) };
    switch (leaf.type) {
      case 'string': o.sv = leaf.value; break;
      case 'boolean': o.bv = leaf.value; break;
      case 'opaque': o.sv = leaf.value.toString('base64'); break;
      case 'objlnk': o.ov = leaf.value; break;
      default: o.v = leaf.value;
    }
    return o;
  });
  return Buffer.from(JSON.stringify({ bn: base, e }));
}

// Encodes a read subtree. Throws 4.06 when the format is unknown, not of this LwM2M
// version, or cannot carry what was read.
export function encode(format, node, version) {
  if (!valueFormats(version).includes(format)) {
    throw new CoapError('4.06', `content format ${format} is not supported by this LwM2M ${version} device`);
  }
  switch (format) {
    case CF.TEXT: {
      const { type, value } = singleValue(node);
      return Buffer.from(textOf(type, value, version), 'utf8');
    }
    case CF.OPAQUE: {
      const { type, value } = singleValue(node);
      if (type !== 'opaque') throw new CoapError('4.06', 'application/octet-stream carries opaque resources only');
      return Buffer.from(value);
    }
    case CF.CBOR: {
      const { type, value } = singleValue(node);
      return cbor.encode(cborOf(type, value));
    }
    case CF.TLV: return encodeTlv(node);
    case CF.SENML_JSON:
    case CF.SENML_CBOR: return encodeSenml(format, senmlRecordsFromLeaves(leaves(node), baseName(node)));
    case CF.LWM2M_JSON: return encodeLwm2mJson(node);
    default: throw new CoapError('4.06', `content format ${format} is not supported`);
  }
}

// ---- Decoders ----

function parseText(type, text, version) {
  switch (type) {
    case 'string': return text;
    case 'integer':
    case 'time':
      if (!/^-?\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
        throw new CoapError('4.00', `"${text}" is not an integer`);
      }
      return Number(text);
    case 'unsigned integer':
      if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
        throw new CoapError('4.00', `"${text}" is not an unsigned integer`);
      }
      return Number(text);
    case 'float':
      if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new CoapError('4.00', `"${text}" is not a float`);
      return Number(text);
    case 'boolean':
      if (text !== '0' && text !== '1') throw new CoapError('4.00', `"${text}" is not a boolean (0 or 1)`);
      return text === '1';
    case 'objlnk':
      if (!/^\d{1,5}:\d{1,5}$/.test(text)) throw new CoapError('4.00', `"${text}" is not an object link`);
      return text;
    case 'opaque':
      if (version === '1.0') throw new CoapError('4.15', 'opaque has no plain text form in LwM2M 1.0');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
        throw new CoapError('4.00', 'opaque text is not base64');
      }
      return Buffer.from(text, 'base64');
    default: throw new CoapError('4.00', `no text form for ${type}`);
  }
}

function fromCbor(type, item) {
  const fail = () => { throw new CoapError('4.00', `CBOR item does not hold a ${type}`); };
  switch (type) {
    case 'string': return typeof item === 'string' ? item : fail();
    case 'integer':
    case 'time':
    case 'unsigned integer':
      if (!Number.isSafeInteger(item) || (type === 'unsigned integer' && item < 0)) fail();
      return item;
    case 'float': return typeof item === 'number' ? item : fail();
    case 'boolean': return typeof item === 'boolean' ? item : fail();
    case 'opaque': return Buffer.isBuffer(item) ? item : fail();
    case 'objlnk': return typeof item === 'string' && /^\d{1,5}:\d{1,5}$/.test(item) ? item : fail();
    default: return fail();
  }
}

// The single resource or resource instance a text/opaque/CBOR write addresses.
function singleTarget(target, model) {
  const def = model.check(target);
  if (!def || (target.length === 3 && def.multiple)) {
    throw new CoapError('4.00',
      'this content format carries a single value: write a single resource or a resource instance');
  }
  return def;
}

function decodeTlv(payload, target, model) {
  let entries;
  try { entries = tlv.decode(payload); } catch (e) { bad('TLV')(e); }
  const [oid] = target;
  const records = [];
  const multiples = new Set();
  let instanceId;
  const value = (rid, type, bytes) => {
    try { return tlv.decodeValue(type, bytes); } catch (e) { return bad(`TLV value of resource ${rid}`)(e); }
  };
  const addResource = (iid, e) => {
    const def = model.resource(oid, e.id);
    if (def.ops === 'E') throw new CoapError('4.05', `resource ${e.id} is executable`);
    if (e.kind === 'resource') {
      if (def.multiple) throw new CoapError('4.00', `resource ${e.id} is multiple: use a Multiple Resource TLV`);
      records.push({ path: [oid, iid, e.id], value: value(e.id, def.type, e.value) });
    } else if (e.kind === 'multiple') {
      if (!def.multiple) throw new CoapError('4.00', `resource ${e.id} is single: use a Resource TLV`);
      multiples.add(`${oid}/${iid}/${e.id}`);
      for (const c of e.children) records.push({ path: [oid, iid, e.id, c.id], value: value(e.id, def.type, c.value) });
    } else {
      throw new CoapError('4.00', `unexpected ${e.kind} TLV among resources`);
    }
  };
  if (target.length <= 2) {
    // An instance write or a create: resources, or one Object Instance TLV around them
    // (TS 1.0 §6.4.3.1; the wrapped form names the instance to create).
    let iid = target[1];
    let list = entries;
    if (entries.length === 1 && entries[0].kind === 'instance') {
      if (target.length === 2 && entries[0].id !== iid) {
        throw new CoapError('4.00', `Object Instance TLV ${entries[0].id} written to ${pathString(target)}`);
      }
      iid = entries[0].id;
      instanceId = iid;
      list = entries[0].children;
    } else if (entries.some((e) => e.kind === 'instance')) {
      throw new CoapError('4.00', 'one Object Instance TLV at most');
    }
    for (const e of list) addResource(iid, e);
  } else if (target.length === 3) {
    const def = model.resource(oid, target[2]);
    if (entries.length === 1 && (entries[0].kind === 'resource' || entries[0].kind === 'multiple')) {
      if (entries[0].id !== target[2]) {
        throw new CoapError('4.00', `TLV of resource ${entries[0].id} written to ${pathString(target)}`);
      }
      addResource(target[1], entries[0]);
    } else if (def.multiple && entries.every((e) => e.kind === 'rinstance')) {
      // Resource Instances without their Multiple Resource wrapper: tolerated.
      multiples.add(target.join('/'));
      for (const e of entries) records.push({ path: [...target, e.id], value: value(def.id, def.type, e.value) });
    } else {
      throw new CoapError('4.00', `expected one Resource TLV for ${pathString(target)}`);
    }
  } else {
    const def = model.resource(oid, target[2]);
    if (entries.length !== 1 || entries[0].kind !== 'rinstance' || entries[0].id !== target[3]) {
      throw new CoapError('4.00', `expected one Resource Instance TLV ${target[3]}`);
    }
    records.push({ path: target, value: value(def.id, def.type, entries[0].value) });
  }
  return { records, multiples, instanceId };
}

// Resolves SenML records (RFC 8428 §4.5: name = base name + name, values given with
// v/vs/vb/vd or the LwM2M vlo). Returns [{ path, field, value }] where field names the
// value label (undefined when the record has none, as in a Read-Composite request).
export function parseSenml(format, payload) {
  let items;
  if (format === CF.SENML_JSON) {
    try { items = JSON.parse(payload.toString('utf8')); } catch (e) { bad('SenML JSON')(e); }
    if (!Array.isArray(items) || items.some((r) => r === null || typeof r !== 'object' || Array.isArray(r))) {
      throw new CoapError('4.00', 'SenML JSON must be an array of records');
    }
  } else {
    let decoded;
    try { decoded = cbor.decode(payload); } catch (e) { bad('SenML CBOR')(e); }
    if (!Array.isArray(decoded) || decoded.some((r) => !(r instanceof Map))) {
      throw new CoapError('4.00', 'SenML CBOR must be an array of maps');
    }
    const labels = new Map([[-2, 'bn'], [-3, 'bt'], [-4, 'bu'], [-5, 'bv'], [-6, 'bs'], [-1, 'bver'],
      [0, 'n'], [1, 'u'], [2, 'v'], [3, 'vs'], [4, 'vb'], [5, 's'], [6, 't'], [7, 'ut'], [8, 'vd'],
      ['vlo', 'vlo']]);
    items = decoded.map((m) => {
      const o = {};
      for (const [k, v] of m) {
        const label = labels.get(k);
        if (label === undefined) throw new CoapError('4.00', `unknown SenML CBOR label ${String(k)}`);
        o[label] = v;
      }
      return o;
    });
  }
  let bn = '';
  let bv = 0;
  const out = [];
  for (const r of items) {
    if (r.bn !== undefined) {
      if (typeof r.bn !== 'string') throw new CoapError('4.00', 'bn must be a string');
      bn = r.bn;
    }
    if (r.bv !== undefined) {
      if (typeof r.bv !== 'number') throw new CoapError('4.00', 'bv must be a number');
      bv = r.bv;
    }
    if (r.n !== undefined && typeof r.n !== 'string') throw new CoapError('4.00', 'n must be a string');
    const name = bn + (r.n ?? '');
    if (name === '') throw new CoapError('4.00', 'SenML record without a name');
    const present = ['v', 'vs', 'vb', 'vd', 'vlo'].filter((k) => r[k] !== undefined);
    if (present.length > 1) throw new CoapError('4.00', `SenML record ${name} has several values`);
    const field = present[0];
    let value = field === undefined ? undefined : r[field];
    if (field === 'v') {
      if (typeof value !== 'number') throw new CoapError('4.00', `v of ${name} is not a number`);
      value += bv;
    }
    if (field === 'vs' && typeof value !== 'string') throw new CoapError('4.00', `vs of ${name} is not a string`);
    if (field === 'vb' && typeof value !== 'boolean') throw new CoapError('4.00', `vb of ${name} is not a boolean`);
    if (field === 'vlo' && typeof value !== 'string') throw new CoapError('4.00', `vlo of ${name} is not a string`);
    if (field === 'vd') {
      if (format === CF.SENML_JSON) {
        if (typeof value !== 'string' || !/^[A-Za-z0-9_-]*$/.test(value)) {
          throw new CoapError('4.00', `vd of ${name} is not base64url`);
        }
        value = Buffer.from(value, 'base64url');
      } else if (!Buffer.isBuffer(value)) {
        throw new CoapError('4.00', `vd of ${name} is not a byte string`);
      }
    }
    out.push({ path: parsePath(name), name, field, value });
  }
  return out;
}

// Checks a SenML value against the resource type; returns the model value.
function typedSenml(rec, type) {
  const want = { string: 'vs', boolean: 'vb', opaque: 'vd', objlnk: 'vlo' }[type] ?? 'v';
  if (rec.field !== want) {
    throw new CoapError('4.00', `${rec.name}: a ${type} is given with "${want}", not "${rec.field ?? 'no value'}"`);
  }
  if ((type === 'integer' || type === 'time' || type === 'unsigned integer') && !Number.isSafeInteger(rec.value)) {
    throw new CoapError('4.00', `${rec.name}: ${rec.value} is not an integer`);
  }
  if (type === 'objlnk' && !/^\d{1,5}:\d{1,5}$/.test(rec.value)) {
    throw new CoapError('4.00', `${rec.name}: "${rec.value}" is not an object link`);
  }
  return rec.value;
}

// Turns resolved SenML or LwM2M JSON entries into write records. Paths must reach a
// resource or resource instance; the model decides 4.04 (unknown) vs 4.05 (not writable).
function typedRecords(entries, model) {
  const records = [];
  const multiples = new Set();
  for (const rec of entries) {
    if (rec.path.length < 3) throw new CoapError('4.00', `${rec.name} does not name a resource`);
    const [oid, iid, rid] = rec.path;
    const def = model.resource(oid, rid);
    if (def.ops === 'E') throw new CoapError('4.05', `${rec.name} is executable`);
    if (rec.path.length === 4) multiples.add(`${oid}/${iid}/${rid}`);
    records.push({ path: rec.path, value: typedSenml(rec, def.type) });
  }
  return { records, multiples };
}

function parseLwm2mJson(payload) {
  let doc;
  try { doc = JSON.parse(payload.toString('utf8')); } catch (e) { bad('LwM2M JSON')(e); }
  if (doc === null || typeof doc !== 'object' || !Array.isArray(doc.e)) {
    throw new CoapError('4.00', 'LwM2M JSON needs an "e" array');
  }
  const bn = doc.bn ?? '';
  if (typeof bn !== 'string') throw new CoapError('4.00', 'bn must be a string');
  return doc.e.map((e) => {
    if (e === null || typeof e !== 'object') throw new CoapError('4.00', 'entries must be objects');
    const name = bn + (e.n ?? '');
    const present = ['v', 'sv', 'bv', 'ov'].filter((k) => e[k] !== undefined);
    if (present.length !== 1) throw new CoapError('4.00', `entry ${name} needs exactly one value`);
    // Map onto the SenML labels so that one checker serves both formats.
    const field = { v: 'v', sv: 'vs', bv: 'vb', ov: 'vlo' }[present[0]];
    return { path: parsePath(name), name, field, value: e[present[0]] };
  });
}

function fixOpaqueFromJson(entries, model) {
  // LwM2M JSON carries opaque values as base64 in "sv" (TS 1.0 §6.4.4).
  for (const e of entries) {
    if (e.path.length < 3) continue;
    const def = model.resource(e.path[0], e.path[2]);
    if (def.type === 'opaque' && e.field === 'vs') {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(e.value)) throw new CoapError('4.00', `${e.name} is not base64`);
      e.field = 'vd';
      e.value = Buffer.from(e.value, 'base64');
    } else if (e.field === 'v' && typeof e.value !== 'number') {
      throw new CoapError('4.00', `v of ${e.name} is not a number`);
    } else if (e.field === 'vb' && typeof e.value !== 'boolean') {
      throw new CoapError('4.00', `bv of ${e.name} is not a boolean`);
    } else if ((e.field === 'vs' || e.field === 'vlo') && typeof e.value !== 'string') {
      throw new CoapError('4.00', `value of ${e.name} is not a string`);
    }
  }
  return entries;
}

// Decodes a Write / Create payload aimed at target. Returns { records, multiples,
// instanceId } (instanceId: the instance a Create payload names, if any).
export function decode(format, payload, target, model, version) {
  if (format === null || format === undefined) {
    throw new CoapError('4.00', 'a write needs a Content-Format');
  }
  if (!valueFormats(version).includes(format)) {
    throw new CoapError('4.15', `content format ${format} is not supported by this LwM2M ${version} device`);
  }
  switch (format) {
    case CF.TEXT: {
      const def = singleTarget(target, model);
      const text = payload.toString('utf8');
      if (!Buffer.from(text, 'utf8').equals(payload)) throw new CoapError('4.00', 'text is not UTF-8');
      return { records: [{ path: target, value: parseText(def.type, text, version) }], multiples: new Set() };
    }
    case CF.OPAQUE: {
      const def = singleTarget(target, model);
      if (def.type !== 'opaque') throw new CoapError('4.00', 'application/octet-stream writes opaque resources only');
      return { records: [{ path: target, value: Buffer.from(payload) }], multiples: new Set() };
    }
    case CF.CBOR: {
      const def = singleTarget(target, model);
      let item;
      try { item = cbor.decode(payload); } catch (e) { bad('CBOR')(e); }
      return { records: [{ path: target, value: fromCbor(def.type, item) }], multiples: new Set() };
    }
    case CF.TLV: return decodeTlv(payload, target, model);
    case CF.SENML_JSON:
    case CF.SENML_CBOR:
    case CF.LWM2M_JSON: {
      const entries = format === CF.LWM2M_JSON
        ? fixOpaqueFromJson(parseLwm2mJson(payload), model) : parseSenml(format, payload);
      for (const e of entries) {
        if (target.some((seg, k) => e.path[k] !== seg)) {
          throw new CoapError('4.00', `${e.name} is outside ${pathString(target)}`);
        }
      }
      const instances = new Set(entries.map((e) => e.path[1]));
      const out = typedRecords(entries, model);
      if (target.length === 1) {
        if (instances.size > 1) throw new CoapError('4.00', 'a Create makes one instance');
        out.instanceId = [...instances][0];
      }
      return out;
    }
    default:
      throw new CoapError('4.15', `content format ${format} is not supported`);
  }
}

// Decodes a Write-Composite (iPATCH) body: SenML records with full paths.
export function decodeComposite(format, payload, model) {
  if (format !== CF.SENML_JSON && format !== CF.SENML_CBOR) {
    throw new CoapError('4.15', 'Write-Composite takes SenML JSON or SenML CBOR');
  }
  return typedRecords(parseSenml(format, payload), model);
}

// Decodes a Read-Composite / Observe-Composite (FETCH) body: the paths to read.
export function decodeCompositePaths(format, payload) {
  if (format !== CF.SENML_JSON && format !== CF.SENML_CBOR) {
    throw new CoapError('4.15', 'Read-Composite takes SenML JSON or SenML CBOR');
  }
  const paths = parseSenml(format, payload).map((r) => r.path);
  if (paths.length === 0) throw new CoapError('4.00', 'Read-Composite names no path');
  return paths;
}

// ---- Link format (RFC 6690) ----

function attrText(attrs) {
  return Object.entries(attrs ?? {}).map(([k, v]) => `;${k}=${v}`).join('');
}

// Discover (TS 1.1 §5.4.2, TS 1.0 §5.4.2): the object, its instances and their resources
// (multiple resources with dim=), each with the attributes attached to it. On a resource,
// a 1.1 device also lists the resource instances.
export function discover(model, attributes, path, version) {
  if (path.length === 0 || path.length > 3) {
    throw new CoapError('4.00', 'Discover applies to an object, instance or resource');
  }
  model.check(path);
  const [oid, iid, rid] = path;
  const links = [];
  const link = (p, extra = '') => links.push(`<${pathString(p)}>${extra}${attrText(attributes.get(pathString(p)))}`);
  const resourceLinks = (i, r) => {
    const def = model.resource(oid, r);
    const v = def.ops.includes('R') ? model.rawValue(oid, i, r) : undefined;
    link([oid, i, r], def.multiple ? `;dim=${v.size}` : '');
    if (def.multiple && path.length === 3 && version !== '1.0') {
      for (const ri of v.keys()) link([oid, i, r, ri]);
    }
  };
  if (path.length === 1) {
    link([oid]);
    for (const i of model.instanceIds(oid)) {
      link([oid, i]);
      for (const r of model.presentResources(oid, i)) resourceLinks(i, r);
    }
  } else if (path.length === 2) {
    link([oid, iid]);
    for (const r of model.presentResources(oid, iid)) resourceLinks(iid, r);
  } else {
    resourceLinks(iid, rid);
  }
  return Buffer.from(links.join(','));
}
