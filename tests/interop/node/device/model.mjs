// The device's objects: definitions (ids, types, operations as in config/objects/*.toml),
// the values of their instances, and the changes made to them.
//
// Values in JS: string; integer / unsigned integer / time as number (whole seconds for
// time); float as number; boolean; opaque as Buffer; objlnk as "objectId:instanceId".
// A single resource holds one value; a multiple resource a Map of instance id → value.

export class CoapError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const kTypes = new Set(['string', 'integer', 'unsigned integer', 'float', 'boolean', 'opaque',
  'time', 'objlnk']);

function res(id, name, ops, type, multiple = false) {
  return { id, name, ops, type, multiple };
}

// Only the resources this device implements; each agrees with config/objects/<id>-*.toml
// (the self-test checks that).
export const kDefinitions = new Map([
  [1, { id: 1, name: 'LwM2M Server', multiple: true, resources: [
    res(0, 'Short Server ID', 'R', 'integer'),
    res(1, 'Lifetime', 'RW', 'integer'),
    res(2, 'Default Minimum Period', 'RW', 'integer'),
    res(3, 'Default Maximum Period', 'RW', 'integer'),
    res(6, 'Notification Storing When Disabled or Offline', 'RW', 'boolean'),
    res(7, 'Binding', 'RW', 'string'),
    res(8, 'Registration Update Trigger', 'E'),
  ] }],
  [3, { id: 3, name: 'Device', multiple: false, resources: [
    res(0, 'Manufacturer', 'R', 'string'),
    res(1, 'Model Number', 'R', 'string'),
    res(2, 'Serial Number', 'R', 'string'),
    res(3, 'Firmware Version', 'R', 'string'),
    res(4, 'Reboot', 'E'),
    res(5, 'Factory Reset', 'E'),
    res(6, 'Available Power Sources', 'R', 'integer', true),
    res(9, 'Battery Level', 'R', 'integer'),
    res(10, 'Memory Free', 'R', 'integer'),
    res(11, 'Error Code', 'R', 'integer', true),
    res(12, 'Reset Error Code', 'E'),
    res(13, 'Current Time', 'RW', 'time'),
    res(14, 'UTC Offset', 'RW', 'string'),
    res(15, 'Timezone', 'RW', 'string'),
    res(16, 'Supported Binding and Modes', 'R', 'string'),
  ] }],
  [3441, { id: 3441, name: 'LwM2M v1.0 Test Object', multiple: true, resources: [
    res(0, 'Reset values', 'E'),
    res(1, 'Randomize values', 'E'),
    res(2, 'Clear values', 'E'),
    res(3, 'Exec With Arguments', 'E'),
    res(4, 'Arguments List', 'R', 'string', true),
    res(110, 'String Value', 'RW', 'string'),
    res(120, 'Integer Value', 'RW', 'integer'),
    res(130, 'Float Value', 'RW', 'float'),
    res(140, 'Boolean Value', 'RW', 'boolean'),
    res(150, 'Opaque Value', 'RW', 'opaque'),
    res(160, 'Time Value', 'RW', 'time'),
    res(170, 'ObjLink Value', 'RW', 'objlnk'),
    res(1110, 'Multiple String Value', 'RW', 'string', true),
    res(1120, 'Multiple Integer Value', 'RW', 'integer', true),
    res(1130, 'Multiple Float Value', 'RW', 'float', true),
    res(1140, 'Multiple Boolean Value', 'RW', 'boolean', true),
    res(1150, 'Multiple Opaque Value', 'RW', 'opaque', true),
    res(1160, 'Multiple Time Value', 'RW', 'time', true),
    res(1170, 'Multiple ObjLink Value', 'RW', 'objlnk', true),
  ] }],
]);

for (const def of kDefinitions.values()) {
  def.byId = new Map(def.resources.map((r) => [r.id, r]));
  for (const r of def.resources) {
    if (r.ops !== 'E' && !kTypes.has(r.type)) throw new Error(`bad type of ${def.id}/${r.id}`);
  }
}

export function resourceDef(oid, rid) {
  return kDefinitions.get(oid)?.byId.get(rid);
}

// Parses "3/0/9" or "/3/0/9" (a trailing '/' tolerated) into [3, 0, 9]; "/" is [].
export function parsePath(text) {
  const trimmed = String(text).replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '') return [];
  const parts = trimmed.split('/');
  if (parts.length > 4) throw new CoapError('4.00', `path ${text} is deeper than a resource instance`);
  return parts.map((p) => {
    if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) throw new CoapError('4.00', `bad path segment "${p}" in ${text}`);
    return Number(p);
  });
}

export function pathString(path) {
  return `/${path.join('/')}`;
}

// The initial values of a 3441 instance: every type, two instances of each multiple.
function testObjectValues() {
  return new Map([
    [4, new Map()],
    [110, 'initial value'],
    [120, 64],
    [130, 3.14159],
    [140, true],
    [150, Buffer.from('0123456789abcdef', 'hex')],
    [160, 1430715600],
    [170, '3:0'],
    [1110, new Map([[0, 'initial value'], [1, 'second value']])],
    [1120, new Map([[0, 64], [1, -12345]])],
    [1130, new Map([[0, 3.14159], [1, -0.5]])],
    [1140, new Map([[0, true], [1, false]])],
    [1150, new Map([[0, Buffer.from('0123456789abcdef', 'hex')], [1, Buffer.from('ff00', 'hex')]])],
    [1160, new Map([[0, 1430715600], [1, 1700000000]])],
    [1170, new Map([[0, '3:0'], [1, '1:0']])],
  ]);
}

// "Clear values" (3441/x/2): the empty value of each type.
function clearedValue(type) {
  switch (type) {
    case 'string': return '';
    case 'boolean': return false;
    case 'opaque': return Buffer.alloc(0);
    case 'objlnk': return '65535:65535';
    default: return 0;
  }
}

function randomValue(type) {
  const n = Math.floor(Math.random() * 1000);
  switch (type) {
    case 'string': return `random ${n}`;
    case 'integer': return n - 500;
    case 'float': return n / 7;
    case 'boolean': return n % 2 === 0;
    case 'opaque': return Buffer.from([n & 0xff, (n >> 8) & 0xff, 0x5a]);
    case 'time': return 1600000000 + n;
    case 'objlnk': return `3:${n % 2}`;
    default: return n;
  }
}

export function valueEquals(a, b) {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (a instanceof Map && b instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !valueEquals(v, b.get(k))) return false;
    return true;
  }
  return a === b;
}

function copyValue(v) {
  if (Buffer.isBuffer(v)) return Buffer.from(v);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, copyValue(x)]));
  return v;
}

// Checks that a JS value suits a resource type (values decoded from the network are typed
// by the decoders; values from the command line need this check).
export function checkValue(type, v) {
  const ok = {
    string: () => typeof v === 'string',
    integer: () => Number.isSafeInteger(v),
    'unsigned integer': () => Number.isSafeInteger(v) && v >= 0,
    time: () => Number.isSafeInteger(v),
    float: () => typeof v === 'number' && Number.isFinite(v),
    boolean: () => typeof v === 'boolean',
    opaque: () => Buffer.isBuffer(v),
    objlnk: () => typeof v === 'string' && /^\d{1,5}:\d{1,5}$/.test(v) &&
      v.split(':').every((x) => Number(x) <= 65535),
  }[type];
  if (!ok || !ok()) throw new CoapError('4.00', `value ${String(v)} is not a valid ${type}`);
}

export class Model {
  constructor({ lifetime, binding }) {
    // oid → Map(iid → Map(rid → value)).
    this.objects = new Map();
    this.onChange = () => {};
    this.timeOffset = 0;  // 3/0/13 reads as the clock plus this offset (seconds).
    this.objects.set(1, new Map([[0, new Map([[0, 1], [1, lifetime], [2, 0], [3, 0], [6, true],
      [7, binding]])]]));
    this.objects.set(3, new Map([[0, new Map([
      [0, 'lwm2md interop'],
      [1, 'npm-coap test device'],
      [2, 'SN-0001'],
      [3, '1.0.0'],
      [6, new Map([[0, 1], [1, 5]])],
      [9, 87],
      [10, 15360],
      [11, new Map([[0, 0]])],
      [14, '+01:00'],
      [15, 'Europe/Berlin'],
      [16, 'UQ'],
    ])]]));
    this.objects.set(3441, new Map([[0, testObjectValues()]]));
  }

  definition(oid) {
    const def = kDefinitions.get(oid);
    if (!def) throw new CoapError('4.04', `object ${oid} is not supported`);
    return def;
  }

  instance(oid, iid) {
    this.definition(oid);
    const inst = this.objects.get(oid)?.get(iid);
    if (!inst) throw new CoapError('4.04', `instance /${oid}/${iid} does not exist`);
    return inst;
  }

  resource(oid, rid) {
    const r = this.definition(oid).byId.get(rid);
    if (!r) throw new CoapError('4.04', `resource ${rid} is not defined in object ${oid}`);
    return r;
  }

  // The value of a readable resource; 3/0/13 follows the clock.
  rawValue(oid, iid, rid) {
    if (oid === 3 && rid === 13) return Math.floor(Date.now() / 1000) + this.timeOffset;
    return this.instance(oid, iid).get(rid);
  }

  instanceIds(oid) {
    return [...(this.objects.get(oid)?.keys() ?? [])].sort((a, b) => a - b);
  }

  // Resources present in an instance (executables count as present: they appear in
  // Discover), in id order.
  presentResources(oid, iid) {
    const inst = this.instance(oid, iid);
    return this.definition(oid).resources
      .filter((r) => r.ops.includes('E') || inst.has(r.id) || (oid === 3 && r.id === 13))
      .map((r) => r.id);
  }

  // Checks that a path names something that exists; returns its resource definition when
  // the path reaches a resource.
  check(path) {
    if (path.length === 0) return undefined;
    const [oid, iid, rid, riid] = path;
    this.definition(oid);
    if (path.length === 1) return undefined;
    this.instance(oid, iid);
    if (path.length === 2) return undefined;
    const def = this.resource(oid, rid);
    if (!this.presentResources(oid, iid).includes(rid)) {
      throw new CoapError('4.04', `resource ${pathString(path.slice(0, 3))} is not instantiated`);
    }
    if (path.length === 4) {
      if (!def.multiple) throw new CoapError('4.04', `${pathString(path.slice(0, 3))} has no instances`);
      if (!this.rawValue(oid, iid, rid).has(riid)) {
        throw new CoapError('4.04', `resource instance ${pathString(path)} does not exist`);
      }
    }
    return def;
  }

  // Reads a subtree for the encoders. Executable (and write-only) resources are left out
  // of object and instance reads and refused (4.05) when named.
  //   object:    { level: 'object', oid, instances: [{ iid, resources: [R] }] }
  //   instance:  { level: 'instance', oid, iid, resources: [R] }
  //   resource:  { level: 'resource', oid, iid, resource: R }
  //   rinstance: { level: 'rinstance', oid, iid, rid, riid, type, value }
  // R = { id, type, multiple, value } with value a Map for multiple resources.
  read(path) {
    if (path.length === 0) throw new CoapError('4.05', 'the root cannot be read');
    const def = this.check(path);
    const [oid, iid, rid, riid] = path;
    const readResource = (i, r) => {
      const d = this.resource(oid, r);
      return { id: r, type: d.type, multiple: d.multiple, value: copyValue(this.rawValue(oid, i, r)) };
    };
    const readable = (i) => this.presentResources(oid, i)
      .filter((r) => this.resource(oid, r).ops.includes('R'));
    if (path.length === 1) {
      return { level: 'object', oid, instances: this.instanceIds(oid).map((i) => ({
        iid: i, resources: readable(i).map((r) => readResource(i, r)) })) };
    }
    if (path.length === 2) {
      return { level: 'instance', oid, iid, resources: readable(iid).map((r) => readResource(iid, r)) };
    }
    if (!def.ops.includes('R')) throw new CoapError('4.05', `${pathString(path)} is not readable`);
    if (path.length === 3) return { level: 'resource', oid, iid, resource: readResource(iid, rid) };
    return { level: 'rinstance', oid, iid, rid, riid, type: def.type,
      value: copyValue(this.rawValue(oid, iid, rid).get(riid)) };
  }

  // Applies decoded values. records: [{ path: [o,i,r] or [o,i,r,ri], value }]; multiples:
  // resource paths ("o/i/r") whose instance set the payload gives in full. With replace
  // (PUT, TS 1.1 §5.4.3 "Replace") a multiple resource named by the payload or the
  // target takes exactly the given instances; a partial update (POST) merges them.
  // allowReadOnly: Create may set resources the server cannot write later.
  write(target, records, opts) {
    this.validateWrite(target, records, opts);
    return this.applyWrite(target, records, opts);
  }

  validateWrite(target, records, { allowReadOnly = false } = {}) {
    const targetDef = this.check(target);
    const [oid, iid] = target;
    if (records.length === 0 && targetDef && !(targetDef.multiple && target.length === 3)) {
      throw new CoapError('4.00', `no value for ${pathString(target)} in the payload`);
    }
    // Validate everything first, so that a refused write changes nothing.
    for (const rec of records) {
      const path = rec.path;
      if (path.length < 3 || path[0] !== oid || path[1] !== iid ||
          target.some((seg, k) => path[k] !== seg)) {
        throw new CoapError('4.00', `${pathString(path)} is outside the target ${pathString(target)}`);
      }
      const def = this.resource(oid, path[2]);
      if (!def.ops.includes('W') && !(allowReadOnly && def.ops.includes('R'))) {
        throw new CoapError('4.05', `${pathString(path.slice(0, 3))} is not writable`);
      }
      if (path.length === 4 && !def.multiple) {
        throw new CoapError('4.00', `${pathString(path.slice(0, 3))} is a single resource`);
      }
      if (path.length === 3 && def.multiple) {
        throw new CoapError('4.00', `${pathString(path)} is a multiple resource: values need instance ids`);
      }
      checkValue(def.type, rec.value);
    }
  }

  applyWrite(target, records, { replace, multiples = new Set() }) {
    const [oid, iid] = target;
    const inst = this.instance(oid, iid);
    const changed = [];
    const byResource = new Map();
    for (const rec of records) {
      const rid = rec.path[2];
      if (!byResource.has(rid)) byResource.set(rid, []);
      byResource.get(rid).push(rec);
    }
    const replaced = new Set([...multiples].map((m) => Number(m.split('/')[2])));
    if (replace && target.length === 3) replaced.add(target[2]);
    for (const rid of new Set([...byResource.keys(), ...replaced])) {
      const def = this.resource(oid, rid);
      const recs = byResource.get(rid) ?? [];
      if (!def.multiple && recs.length === 0) continue;
      const before = copyValue(this.rawValue(oid, iid, rid));
      if (def.multiple) {
        const current = replace && replaced.has(rid) ? new Map() : new Map(inst.get(rid) ?? []);
        for (const rec of recs) current.set(rec.path[3], copyValue(rec.value));
        inst.set(rid, new Map([...current].sort((a, b) => a[0] - b[0])));
      } else if (oid === 3 && rid === 13) {
        this.timeOffset = recs.at(-1).value - Math.floor(Date.now() / 1000);
      } else {
        inst.set(rid, copyValue(recs.at(-1).value));
      }
      if (!valueEquals(before, this.rawValue(oid, iid, rid))) changed.push([oid, iid, rid]);
    }
    for (const p of changed) this.onChange(p);
    return changed;
  }

  // Creates an instance of a multiple-instance object; returns its id.
  create(oid, iid, records) {
    const def = this.definition(oid);
    if (!def.multiple || oid === 1) throw new CoapError('4.05', `instances of /${oid} cannot be created`);
    if (iid === undefined) {
      iid = 0;
      while (this.objects.get(oid).has(iid)) iid++;
    }
    if (iid > 65534) throw new CoapError('4.00', `instance id ${iid} out of range`);
    if (this.objects.get(oid).has(iid)) throw new CoapError('4.00', `/${oid}/${iid} already exists`);
    const inst = testObjectValues();
    this.objects.get(oid).set(iid, inst);
    try {
      for (const rec of records) {
        if (rec.path[1] === undefined) rec.path[1] = iid;
      }
      this.write([oid, iid], records, { replace: true, multiples: new Set(), allowReadOnly: true });
    } catch (e) {
      this.objects.get(oid).delete(iid);
      throw e;
    }
    this.onChange([oid]);
    return iid;
  }

  delete(path) {
    if (path.length !== 2) {
      throw new CoapError('4.05', `delete ${pathString(path)}: only object instances can be deleted`);
    }
    this.check(path);
    const [oid, iid] = path;
    if (oid !== 3441) throw new CoapError('4.05', `instances of /${oid} cannot be deleted`);
    this.objects.get(oid).delete(iid);
    this.onChange([oid, iid]);
  }

  // Sets a value from a stdin command, bypassing the write rules (a sensor reading, a
  // clock tick). Returns whether the value changed.
  setFromCommand(path, jsonValue) {
    if (path.length < 3) throw new CoapError('4.00', 'set needs a resource or resource instance path');
    const [oid, iid, rid, riid] = path;
    this.definition(oid);
    const inst = this.instance(oid, iid);
    const def = this.resource(oid, rid);
    if (def.ops === 'E') throw new CoapError('4.05', `${pathString(path)} is executable`);
    const fromJson = (v) => {
      if (def.type === 'opaque') {
        if (typeof v !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(v)) {
          throw new CoapError('4.00', 'opaque values are given as hex strings');
        }
        v = Buffer.from(v, 'hex');
      }
      checkValue(def.type, v);
      return v;
    };
    const before = copyValue(this.rawValue(oid, iid, rid));
    if (def.multiple && path.length === 3) {
      if (jsonValue === null || typeof jsonValue !== 'object' || Array.isArray(jsonValue)) {
        throw new CoapError('4.00', 'a multiple resource is set with an object {"0": value, ...}');
      }
      const m = new Map();
      for (const [k, v] of Object.entries(jsonValue)) m.set(parsePath(k)[0], fromJson(v));
      inst.set(rid, new Map([...m].sort((a, b) => a[0] - b[0])));
    } else if (def.multiple) {
      const m = new Map(inst.get(rid) ?? []);
      m.set(riid, fromJson(jsonValue));
      inst.set(rid, new Map([...m].sort((a, b) => a[0] - b[0])));
    } else {
      if (path.length === 4) throw new CoapError('4.00', `${pathString(path.slice(0, 3))} is a single resource`);
      const v = fromJson(jsonValue);
      if (oid === 3 && rid === 13) this.timeOffset = v - Math.floor(Date.now() / 1000);
      else inst.set(rid, v);
    }
    const changed = !valueEquals(before, this.rawValue(oid, iid, rid));
    if (changed) this.onChange([oid, iid, rid]);
    return changed;
  }

  // The 3441 executables: 0 resets, 1 randomizes, 2 clears the values of the instance.
  resetTestInstance(iid, how) {
    const inst = this.instance(3441, iid);
    const fresh = testObjectValues();
    for (const def of kDefinitions.get(3441).resources) {
      if (def.ops !== 'RW') continue;
      const before = copyValue(inst.get(def.id));
      const next = () => (how === 'clear' ? clearedValue(def.type) : randomValue(def.type));
      let v;
      if (how === 'reset') {
        v = fresh.get(def.id);
      } else {
        v = def.multiple ? new Map([...inst.get(def.id).keys()].map((k) => [k, next()])) : next();
      }
      inst.set(def.id, v);
      if (!valueEquals(before, v)) this.onChange([3441, iid, def.id]);
    }
  }

  setArguments(iid, args) {
    const inst = this.instance(3441, iid);
    inst.set(4, new Map(args.map((a) => [a.digit, a.value ?? ''])));
    this.onChange([3441, iid, 4]);
  }

  // Plain-JSON view of every value for {"cmd":"dump"} (opaque as hex).
  toJSON() {
    const plain = (v) => {
      if (Buffer.isBuffer(v)) return v.toString('hex');
      if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]));
      return v;
    };
    const out = {};
    for (const [oid, insts] of this.objects) {
      out[oid] = {};
      for (const iid of [...insts.keys()].sort((a, b) => a - b)) {
        const o = {};
        for (const rid of this.presentResources(oid, iid)) {
          const d = this.resource(oid, rid);
          if (d.ops.includes('R')) o[rid] = plain(this.rawValue(oid, iid, rid));
        }
        out[oid][iid] = o;
      }
    }
    return out;
  }
}
