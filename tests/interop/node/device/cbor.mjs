// A small CBOR (RFC 8949) encoder and decoder: what SenML CBOR (RFC 8428 §6) and the LwM2M
// CBOR format (TS 1.1 §7.4.6) need — unsigned/negative integers, byte and text strings,
// arrays, maps, tags (read and dropped), false/true/null and floats.
//
// JS mapping: Map ↔ map (keys may be numbers or strings), Array ↔ array, Buffer ↔ byte
// string, string ↔ text string, boolean, null, number (an integral number is encoded as an
// integer; wrap it in CborFloat to force a float), bigint for integers beyond 2^53.

export class CborError extends Error {}

// Forces a number to be encoded as a float even when it is integral (a Float resource
// holding 3 must still be a CBOR float, TS 1.1 §7.4.6).
export class CborFloat {
  constructor(value) { this.value = value; }
}

function head(major, length) {
  const m = major << 5;
  if (typeof length === 'bigint') {
    if (length < 0n || length > 0xffffffffffffffffn) throw new CborError('integer out of range');
    if (length <= 0xffffffffn) return head(major, Number(length));
    const b = Buffer.alloc(9);
    b[0] = m | 27;
    b.writeBigUInt64BE(length, 1);
    return b;
  }
  if (length < 24) return Buffer.of(m | length);
  if (length < 0x100) return Buffer.of(m | 24, length);
  if (length < 0x10000) { const b = Buffer.alloc(3); b[0] = m | 25; b.writeUInt16BE(length, 1); return b; }
  if (length < 0x100000000) { const b = Buffer.alloc(5); b[0] = m | 26; b.writeUInt32BE(length, 1); return b; }
  return head(major, BigInt(length));
}

function encodeFloat(value) {
  // The shortest of float32/float64 that holds the value exactly (RFC 8949 §4.2.2 prefers
  // the shortest; half precision is left out, a decoder must accept the longer forms).
  if (Number.isNaN(value) || Math.fround(value) === value) {
    const b = Buffer.alloc(5);
    b[0] = 0xfa;
    b.writeFloatBE(value, 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = 0xfb;
  b.writeDoubleBE(value, 1);
  return b;
}

function encodeInto(value, out) {
  if (value instanceof CborFloat) {
    out.push(encodeFloat(value.value));
  } else if (typeof value === 'number') {
    if (Number.isInteger(value) && Number.isSafeInteger(value)) {
      out.push(value >= 0 ? head(0, value) : head(1, -1 - value));
    } else {
      out.push(encodeFloat(value));
    }
  } else if (typeof value === 'bigint') {
    out.push(value >= 0n ? head(0, value) : head(1, -1n - value));
  } else if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    out.push(head(3, bytes.length), bytes);
  } else if (Buffer.isBuffer(value)) {
    out.push(head(2, value.length), value);
  } else if (Array.isArray(value)) {
    out.push(head(4, value.length));
    for (const item of value) encodeInto(item, out);
  } else if (value instanceof Map) {
    out.push(head(5, value.size));
    for (const [k, v] of value) { encodeInto(k, out); encodeInto(v, out); }
  } else if (value === false) {
    out.push(Buffer.of(0xf4));
  } else if (value === true) {
    out.push(Buffer.of(0xf5));
  } else if (value === null) {
    out.push(Buffer.of(0xf6));
  } else {
    throw new CborError(`cannot encode ${typeof value}`);
  }
}

export function encode(value) {
  const out = [];
  encodeInto(value, out);
  return Buffer.concat(out);
}

function halfToNumber(h) {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (mant + 1024) * 2 ** (exp - 25);
}

// Nesting bound: a hostile or broken peer must not exhaust the stack.
const kMaxDepth = 32;

class Reader {
  constructor(buf) { this.buf = buf; this.pos = 0; }

  need(n) {
    if (this.pos + n > this.buf.length) throw new CborError('truncated CBOR item');
  }

  // Returns the argument of a head: a number, a bigint above 2^53, or null for the
  // indefinite length (additional information 31).
  argument(info) {
    if (info < 24) return info;
    if (info === 24) { this.need(1); return this.buf[this.pos++]; }
    if (info === 25) { this.need(2); const v = this.buf.readUInt16BE(this.pos); this.pos += 2; return v; }
    if (info === 26) { this.need(4); const v = this.buf.readUInt32BE(this.pos); this.pos += 4; return v; }
    if (info === 27) {
      this.need(8);
      const v = this.buf.readBigUInt64BE(this.pos);
      this.pos += 8;
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    if (info === 31) return null;
    throw new CborError(`reserved additional information ${info}`);
  }

  chunks(major, depth) {
    const parts = [];
    for (;;) {
      this.need(1);
      if (this.buf[this.pos] === 0xff) { this.pos++; break; }
      const initial = this.buf[this.pos++];
      if (initial >> 5 !== major) throw new CborError('bad chunk in an indefinite string');
      const len = this.argument(initial & 0x1f);
      if (len === null || typeof len === 'bigint') throw new CborError('bad chunk length');
      this.need(len);
      parts.push(this.buf.subarray(this.pos, this.pos + len));
      this.pos += len;
      if (parts.length > 100000 || depth > kMaxDepth) throw new CborError('too many chunks');
    }
    return Buffer.concat(parts);
  }

  item(depth = 0) {
    if (depth > kMaxDepth) throw new CborError('CBOR nested too deeply');
    this.need(1);
    const initial = this.buf[this.pos++];
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (major === 7) {
      if (info === 20) return false;
      if (info === 21) return true;
      if (info === 22 || info === 23) return null;
      if (info === 25) {
        this.need(2);
        const v = halfToNumber(this.buf.readUInt16BE(this.pos));
        this.pos += 2;
        return v;
      }
      if (info === 26) { this.need(4); const v = this.buf.readFloatBE(this.pos); this.pos += 4; return v; }
      if (info === 27) { this.need(8); const v = this.buf.readDoubleBE(this.pos); this.pos += 8; return v; }
      throw new CborError(`unsupported simple value ${info}`);
    }
    const arg = this.argument(info);
    switch (major) {
      case 0: if (arg === null) throw new CborError('indefinite integer'); return arg;
      case 1:
        if (arg === null) throw new CborError('indefinite integer');
        return typeof arg === 'bigint' ? -1n - arg : -1 - arg;
      case 2:
      case 3: {
        let bytes;
        if (arg === null) {
          bytes = this.chunks(major, depth);
        } else {
          if (typeof arg === 'bigint') throw new CborError('string too long');
          this.need(arg);
          bytes = this.buf.subarray(this.pos, this.pos + arg);
          this.pos += arg;
        }
        if (major === 2) return Buffer.from(bytes);
        const text = bytes.toString('utf8');
        if (!Buffer.from(text, 'utf8').equals(bytes)) throw new CborError('text string is not UTF-8');
        return text;
      }
      case 4: {
        const out = [];
        if (arg === null) {
          for (;;) {
            this.need(1);
            if (this.buf[this.pos] === 0xff) { this.pos++; return out; }
            out.push(this.item(depth + 1));
          }
        }
        if (typeof arg === 'bigint' || arg > this.buf.length - this.pos) throw new CborError('array too long');
        for (let i = 0; i < arg; i++) out.push(this.item(depth + 1));
        return out;
      }
      case 5: {
        const out = new Map();
        const entry = () => {
          const k = this.item(depth + 1);
          if (out.has(k)) throw new CborError(`duplicate map key ${String(k)}`);
          out.set(k, this.item(depth + 1));
        };
        if (arg === null) {
          for (;;) {
            this.need(1);
            if (this.buf[this.pos] === 0xff) { this.pos++; return out; }
            entry();
          }
        }
        if (typeof arg === 'bigint' || arg > this.buf.length - this.pos) throw new CborError('map too long');
        for (let i = 0; i < arg; i++) entry();
        return out;
      }
      case 6:
        // Tags (e.g. 1, epoch time) carry no meaning the device needs: keep the content.
        if (arg === null) throw new CborError('indefinite tag');
        return this.item(depth + 1);
      default:
        throw new CborError('unreachable major type');
    }
  }
}

// Decodes exactly one item; trailing bytes are an error.
export function decode(buf) {
  const r = new Reader(buf);
  const value = r.item();
  if (r.pos !== buf.length) throw new CborError(`${buf.length - r.pos} bytes after the CBOR item`);
  return value;
}
