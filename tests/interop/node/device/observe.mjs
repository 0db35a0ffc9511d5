// Notification attributes (Write-Attributes) and the scheduling of notifications:
// TS 1.1 §5.1.2 (pmin, pmax, gt, lt, st, epmin, epmax) and TS 1.0 §5.1.2 (the first five),
// with RFC 7641 for the observation itself.
import { CoapError, pathString } from './model.mjs';

const kNumeric = new Set(['integer', 'unsigned integer', 'float', 'time']);

// Attributes written by the server, kept per path string ("/3/0/9").
export class Attributes {
  constructor() { this.byPath = new Map(); }

  get(pathText) { return this.byPath.get(pathText); }

  // Applies Write-Attributes queries ("pmin=10", "gt=5.5"; a name alone clears it).
  // Validates everything before changing anything.
  apply(path, queries, model, version) {
    if (path.length === 0) throw new CoapError('4.05', 'attributes cannot be written on the root');
    const def = model.check(path);
    const allowed = version === '1.0' ? ['pmin', 'pmax', 'gt', 'lt', 'st']
      : ['pmin', 'pmax', 'gt', 'lt', 'st', 'epmin', 'epmax'];
    const changes = [];
    for (const q of queries) {
      const eq = q.indexOf('=');
      const name = eq < 0 ? q : q.slice(0, eq);
      const value = eq < 0 ? undefined : q.slice(eq + 1);
      if (!allowed.includes(name)) throw new CoapError('4.00', `unknown attribute ${name} for LwM2M ${version}`);
      if (value !== undefined) {
        if (['pmin', 'pmax', 'epmin', 'epmax'].includes(name) && !/^\d{1,9}$/.test(value)) {
          throw new CoapError('4.00', `${name}=${value}: a period is a whole number of seconds`);
        }
        if (['gt', 'lt', 'st'].includes(name) && !/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(value)) {
          throw new CoapError('4.00', `${name}=${value} is not a number`);
        }
        if (name === 'st' && Number(value) < 0) throw new CoapError('4.00', 'st must not be negative');
      }
      // gt/lt/st compare numbers: they belong on numeric resources (TS 1.1 Table 5.1.2-1).
      if (['gt', 'lt', 'st'].includes(name) && (path.length < 3 || !kNumeric.has(def?.type) ||
          (path.length === 3 && def.multiple))) {
        throw new CoapError('4.00', `${name} applies to a single numeric resource only`);
      }
      if (['epmin', 'epmax'].includes(name) && path.length > 3) {
        throw new CoapError('4.00', `${name} does not apply to a resource instance`);
      }
      changes.push([name, value]);
    }
    const key = pathString(path);
    const next = { ...(this.byPath.get(key) ?? {}) };
    for (const [name, value] of changes) {
      if (value === undefined) delete next[name]; else next[name] = value;
    }
    const num = (k) => (next[k] === undefined ? undefined : Number(next[k]));
    if (num('lt') !== undefined && num('gt') !== undefined &&
        !(num('lt') + 2 * (num('st') ?? 0) < num('gt'))) {
      // TS 1.1 §5.1.2: "lt" + 2*"st" < "gt" when all are present.
      throw new CoapError('4.00', 'lt + 2*st must be below gt');
    }
    if (Object.keys(next).length === 0) this.byPath.delete(key); else this.byPath.set(key, next);
  }

  // The attributes in force for a path: those of the path, else of its parents (resource
  // instance → resource → instance → object), then the server's default periods
  // (/1/0/2, /1/0/3) for pmin/pmax.
  effective(path, model) {
    const out = {};
    for (let len = path.length; len >= 1; len--) {
      const a = this.byPath.get(pathString(path.slice(0, len)));
      if (!a) continue;
      for (const [k, v] of Object.entries(a)) if (out[k] === undefined) out[k] = Number(v);
    }
    const server = model.objects.get(1)?.get(0);
    if (out.pmin === undefined && server?.get(2)) out.pmin = server.get(2);
    if (out.pmax === undefined && server?.get(3)) out.pmax = server.get(3);
    return out;
  }

  toJSON() { return Object.fromEntries(this.byPath); }
}

// Schedules the notifications of all observations. The client supplies:
//   attributes(obs)  → effective attributes of the observation
//   numeric(obs)     → the current value when the observation is on one numeric resource
//   notify(obs)      → sends a notification; returns false if the observation is gone
//   asleep()         → true while the device is in queue-mode sleep
export class Scheduler {
  constructor(hooks) {
    this.hooks = hooks;
    this.list = new Set();
  }

  start(obs) {
    obs.lastSentMs = Date.now();
    obs.lastNumeric = this.hooks.numeric(obs);
    obs.pending = false;
    this.list.add(obs);
    this.armPmax(obs);
  }

  stop(obs) {
    clearTimeout(obs.pminTimer);
    clearTimeout(obs.pmaxTimer);
    obs.pminTimer = obs.pmaxTimer = null;
    this.list.delete(obs);
  }

  // A value under (or above, for a deleted instance) changedPath changed.
  changed(changedPath) {
    const related = (p) => {
      const n = Math.min(p.length, changedPath.length);
      for (let k = 0; k < n; k++) if (p[k] !== changedPath[k]) return false;
      return true;
    };
    for (const obs of [...this.list]) {
      if (obs.paths.some(related)) this.onChange(obs);
    }
  }

  onChange(obs) {
    const a = this.hooks.attributes(obs);
    if (a.gt !== undefined || a.lt !== undefined || a.st !== undefined) {
      const now = this.hooks.numeric(obs);
      const before = obs.lastNumeric;
      if (now !== undefined && before !== undefined) {
        const crossed = (t) => t !== undefined && ((before <= t && now > t) || (before > t && now <= t));
        const crossedLow = (t) => t !== undefined && ((before >= t && now < t) || (before < t && now >= t));
        const stepped = a.st !== undefined && Math.abs(now - before) >= a.st;
        if (!crossed(a.gt) && !crossedLow(a.lt) && !stepped) return;
      }
    }
    const wait = obs.lastSentMs + (a.pmin ?? 0) * 1000 - Date.now();
    if (wait <= 0) {
      this.fire(obs);
    } else if (!obs.pminTimer) {
      // RFC 7641 §4.5 / TS pmin: hold the change until pmin has passed since the last
      // notification, then send the value current at that time.
      obs.pminTimer = setTimeout(() => { obs.pminTimer = null; this.fire(obs); }, wait);
    }
  }

  fire(obs) {
    if (!this.list.has(obs)) return;
    clearTimeout(obs.pminTimer);
    clearTimeout(obs.pmaxTimer);
    obs.pminTimer = obs.pmaxTimer = null;
    if (this.hooks.asleep()) {
      // Queue mode: the notification waits for the wake-up (TS 1.1 §6.5).
      obs.pending = true;
      return;
    }
    obs.pending = false;
    if (!this.hooks.notify(obs)) return;
    obs.lastSentMs = Date.now();
    obs.lastNumeric = this.hooks.numeric(obs);
    this.armPmax(obs);
  }

  armPmax(obs) {
    clearTimeout(obs.pmaxTimer);
    obs.pmaxTimer = null;
    const a = this.hooks.attributes(obs);
    // pmax counts only when above pmin (TS 1.1 §5.1.2); 0 or absent means none.
    if (!a.pmax || a.pmax < (a.pmin ?? 0)) return;
    const wait = Math.max(0, obs.lastSentMs + a.pmax * 1000 - Date.now());
    obs.pmaxTimer = setTimeout(() => { obs.pmaxTimer = null; this.fire(obs); }, wait);
  }

  // Attributes changed: periods restart from the last notification.
  rearm() {
    for (const obs of this.list) this.armPmax(obs);
  }

  // Wake-up from queue mode: send what waited.
  flush() {
    for (const obs of [...this.list]) {
      if (obs.pending) this.fire(obs);
      else this.armPmax(obs);
    }
  }
}
