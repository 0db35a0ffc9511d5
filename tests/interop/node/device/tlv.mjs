// OMA LwM2M TLV (TS 1.0 §6.4.3, content format 11542).
//
// Type byte: bits 7-6 identifier kind (00 Object Instance, 01 Resource Instance,
// 10 Multiple Resource, 11 Resource with value); bit 5 identifier length (0: 8 bits,
// 1: 16 bits); bits 4-3 length field size (00: length in bits 2-0, 01/10/11: 8/16/24-bit
// length field); bits 2-0 the length when it fits in three bits.
//
// An entry is { kind, id, value: Buffer } for 'resource' and 'rinstance', or
// { kind, id, children: [entry] } for 'instance' and 'multiple'.

export class TlvError extends Error {}

const kKinds = ['instance', 'rinstance', 'multiple', 'resource'];

function encodeEntry(entry, out) {
  const kind = kKinds.indexOf(entry.kind);
  if (kind < 0) throw new TlvError(`unknown TLV kind ${entry.kind}`);
  let value;
  if (entry.kind === 'instance' || entry.kind === 'multiple') {
    const parts = [];
    for (const child of entry.children) encodeEntry(child, parts);
    value = Buffer.concat(parts);
  } else {
    value = entry.value;
  }
  if (!Number.isInteger(entry.id) || entry.id < 0 || entry.id > 0xffff) {
    throw new TlvError(`TLV identifier ${entry.id} out of range`);
  }
  const len = value.length;
  if (len > 0xffffff) throw new TlvError('TLV value longer than 2^24-1 bytes');
  let type = kind << 6;
  const idBytes = entry.id > 0xff ? Buffer.of(entry.id >> 8, entry.id & 0xff) : Buffer.of(entry.id);
  if (entry.id > 0xff) type |= 0x20;
  let lenBytes;
  if (len < 8) {
    type |= len;
    lenBytes = Buffer.alloc(0);
  } else if (len <= 0xff) {
    type |= 0x08;
    lenBytes = Buffer.of(len);
  } else if (len <= 0xffff) {
    type |= 0x10;
    lenBytes = Buffer.of(len >> 8, len & 0xff);
  } else {
    type |= 0x18;
    lenBytes = Buffer.of(len >> 16, (len >> 8) & 0xff, len & 0xff);
  }
  out.push(Buffer.of(type), idBytes, lenBytes, value);
}

export function encode(entries) {
  const out = [];
  for (const e of entries) encodeEntry(e, out);
  return Buffer.concat(out);
}

function decodeList(buf, depth) {
  const entries = [];
  let pos = 0;
  while (pos < buf.length) {
    const type = buf[pos++];
    const kind = kKinds[type >> 6];
    const idLen = type & 0x20 ? 2 : 1;
    const lenType = (type >> 3) & 0x03;
    if (pos + idLen + lenType > buf.length) throw new TlvError('truncated TLV header');
    const id = idLen === 2 ? buf.readUInt16BE(pos) : buf[pos];
    pos += idLen;
    let len = type & 0x07;
    if (lenType !== 0) {
      if ((type & 0x07) !== 0) throw new TlvError('TLV length bits set with a length field');
      len = buf.readUIntBE(pos, lenType);
      pos += lenType;
    }
    if (pos + len > buf.length) throw new TlvError(`TLV value of ${len} bytes runs past the payload`);
    const value = buf.subarray(pos, pos + len);
    pos += len;
    if (kind === 'instance' || kind === 'multiple') {
      // An Object Instance holds Resources (single or multiple); a Multiple Resource holds
      // Resource Instances only (TS 1.0 §6.4.3.1).
      if (depth > 1) throw new TlvError('TLV nested too deeply');
      const children = decodeList(value, depth + 1);
      for (const c of children) {
        if (kind === 'multiple' && c.kind !== 'rinstance') {
          throw new TlvError('a Multiple Resource TLV may hold Resource Instances only');
        }
        if (kind === 'instance' && c.kind !== 'resource' && c.kind !== 'multiple') {
          throw new TlvError('an Object Instance TLV may hold Resources only');
        }
      }
      entries.push({ kind, id, children });
    } else {
      entries.push({ kind, id, value: Buffer.from(value) });
    }
  }
  return entries;
}

export function decode(buf) {
  return decodeList(buf, 0);
}

// Value encodings (TS 1.0 §6.4.3 Table 20 / TS 1.1 Appendix C).

function encodeInteger(v) {
  const n = BigInt(v);
  for (const size of [1, 2, 4, 8]) {
    const bits = BigInt(size * 8);
    const min = -(1n << (bits - 1n));
    const max = (1n << (bits - 1n)) - 1n;
    if (n >= min && n <= max) {
      const b = Buffer.alloc(size);
      if (size === 8) b.writeBigInt64BE(n); else b.writeIntBE(Number(n), 0, size);
      return b;
    }
  }
  throw new TlvError(`integer ${v} does not fit in 64 bits`);
}

function encodeUnsigned(v) {
  const n = BigInt(v);
  if (n < 0n) throw new TlvError('negative unsigned integer');
  for (const size of [1, 2, 4, 8]) {
    if (n < (1n << BigInt(size * 8))) {
      const b = Buffer.alloc(size);
      if (size === 8) b.writeBigUInt64BE(n); else b.writeUIntBE(Number(n), 0, size);
      return b;
    }
  }
  throw new TlvError(`unsigned integer ${v} does not fit in 64 bits`);
}

export function encodeValue(type, v) {
  switch (type) {
    case 'string': return Buffer.from(v, 'utf8');
    case 'integer':
    case 'time': return encodeInteger(v);
    case 'unsigned integer': return encodeUnsigned(v);
    case 'float': {
      // Four bytes when single precision holds the value exactly, else eight.
      if (Math.fround(v) === v) { const b = Buffer.alloc(4); b.writeFloatBE(v); return b; }
      const b = Buffer.alloc(8);
      b.writeDoubleBE(v);
      return b;
    }
    case 'boolean': return Buffer.of(v ? 1 : 0);
    case 'opaque': return Buffer.from(v);
    case 'objlnk': {
      const [o, i] = v.split(':').map(Number);
      const b = Buffer.alloc(4);
      b.writeUInt16BE(o, 0);
      b.writeUInt16BE(i, 2);
      return b;
    }
    default: throw new TlvError(`no TLV encoding for type ${type}`);
  }
}

function toSafeNumber(big) {
  if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new TlvError('integer beyond 2^53 is not supported by this device');
  }
  return Number(big);
}

export function decodeValue(type, b) {
  switch (type) {
    case 'string': {
      const s = b.toString('utf8');
      if (!Buffer.from(s, 'utf8').equals(b)) throw new TlvError('string is not UTF-8');
      return s;
    }
    case 'integer':
    case 'time':
      if (![1, 2, 4, 8].includes(b.length)) throw new TlvError(`integer of ${b.length} bytes`);
      return b.length === 8 ? toSafeNumber(b.readBigInt64BE()) : b.readIntBE(0, b.length);
    case 'unsigned integer':
      if (![1, 2, 4, 8].includes(b.length)) throw new TlvError(`unsigned integer of ${b.length} bytes`);
      return b.length === 8 ? toSafeNumber(b.readBigUInt64BE()) : b.readUIntBE(0, b.length);
    case 'float':
      if (b.length === 4) return b.readFloatBE();
      if (b.length === 8) return b.readDoubleBE();
      throw new TlvError(`float of ${b.length} bytes`);
    case 'boolean':
      if (b.length !== 1 || b[0] > 1) throw new TlvError('boolean must be one byte 0 or 1');
      return b[0] === 1;
    case 'opaque': return Buffer.from(b);
    case 'objlnk':
      if (b.length !== 4) throw new TlvError(`objlnk of ${b.length} bytes`);
      return `${b.readUInt16BE(0)}:${b.readUInt16BE(2)}`;
    default: throw new TlvError(`no TLV decoding for type ${type}`);
  }
}
