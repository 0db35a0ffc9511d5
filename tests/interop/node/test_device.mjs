// An LwM2M test device on the npm coap package: one process, one client, one UDP socket.
//
//   node test_device.mjs --server HOST:PORT --endpoint NAME [--version 1.0|1.1]
//        [--binding U|UQ] [--lifetime S] [--con-notify] [--no-register]
//   node test_device.mjs --self-check       runs the codec checks and exits
//
// HOST:PORT is "127.0.0.1:5683", "[::1]:5683" or "localhost:5683". The device registers at
// start (unless --no-register) and then:
//   - prints one JSON object per line on stdout for everything that happens:
//     listening, registered, updated, deregistered, request (every request received, with
//     duplicate/silent flags), response, observed, notified, observe-cancelled, executed,
//     created, deleted, sent, set, state, ignored (asleep), ping, error;
//   - reads one JSON command per line on stdin:
//     {"cmd":"set","path":"3/0/9","value":42}  (opaque as hex, multiple as {"0":v,...})
//     {"cmd":"update"} (with "lifetime":S, a new lifetime) {"cmd":"register"}
//     {"cmd":"deregister"} {"cmd":"sleep"} {"cmd":"wake"}
//     {"cmd":"send","paths":["/3/0/9"],"format":"senml-cbor"|"senml-json"}
//     {"cmd":"silent","paths":["/3/0/13"]}  {"cmd":"dump"}  {"cmd":"exit"}
// It exits when stdin closes or on {"cmd":"exit"}.
import readline from 'node:readline';
import { Device } from './device/client.mjs';
import { runSelfCheck } from './device/selfcheck.mjs';

function usage(message) {
  process.stderr.write(`${message}\nusage: node test_device.mjs --server HOST:PORT --endpoint NAME ` +
    '[--version 1.0|1.1] [--binding U|UQ] [--lifetime S] [--con-notify] [--no-register]\n');
  process.exit(2);
}

function parseServer(text) {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text) ?? /^(.*):(\d+)$/.exec(text);
  if (!m) usage(`--server ${text}: expected HOST:PORT`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) usage(`--server ${text}: bad port`);
  return { host: m[1] === 'localhost' ? '127.0.0.1' : m[1], port };
}

function parseArgs(argv) {
  const opts = { version: '1.1', binding: 'U', lifetime: 300, conNotify: false, register: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case '--server': Object.assign(opts, parseServer(value())); break;
      case '--endpoint': opts.endpoint = value(); break;
      case '--version': opts.version = value(); break;
      case '--binding': opts.binding = value(); break;
      case '--lifetime': opts.lifetime = Number(value()); break;
      case '--con-notify': opts.conNotify = true; break;
      case '--no-register': opts.register = false; break;
      case '--self-check': opts.selfCheck = true; break;
      default: usage(`unknown argument ${arg}`);
    }
  }
  if (opts.selfCheck) return opts;
  if (!opts.host) usage('--server is required');
  if (!opts.endpoint) usage('--endpoint is required');
  if (!['1.0', '1.1'].includes(opts.version)) usage('--version is 1.0 or 1.1');
  if (!['U', 'UQ'].includes(opts.binding)) usage('--binding is U or UQ');
  if (!Number.isInteger(opts.lifetime) || opts.lifetime < 1) usage('--lifetime is a positive number of seconds');
  return opts;
}

function print(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

const opts = parseArgs(process.argv.slice(2));
if (opts.selfCheck) {
  const failures = runSelfCheck();
  for (const f of failures) process.stderr.write(`self-check: ${f}\n`);
  print({ event: 'self-check', failures: failures.length });
  process.exit(failures.length === 0 ? 0 : 1);
}

// A bug in the device must be visible to the test reading stdout, not only on stderr.
process.on('uncaughtException', (e) => {
  print({ event: 'error', what: 'uncaught', message: e.stack });
  process.exit(1);
});

const device = new Device(opts, print);
await device.start();

// Commands run one after another, in the order they arrive.
let chain = Promise.resolve();
let exiting = false;
function exit(code) {
  if (exiting) return;
  exiting = true;
  print({ event: 'exit' });
  device.close();
  // stdout is a pipe in tests: let it drain before the process goes.
  process.stdout.write('', () => process.exit(code));
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === '') return;
  chain = chain.then(async () => {
    if (exiting) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      print({ event: 'error', what: 'command', message: `not JSON: ${e.message}` });
      return;
    }
    if (cmd.cmd === 'exit') { exit(0); return; }
    try {
      await device.command(cmd);
    } catch (e) {
      print({ event: 'error', what: 'command', cmd: cmd.cmd, code: e.code, message: e.message });
    }
  });
});
lines.on('close', () => { chain = chain.then(() => exit(0)); });

if (opts.register) chain = chain.then(() => device.register());
