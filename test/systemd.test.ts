// Checks the shipped systemd units with systemd's own tools: `systemd-analyze verify` must have
// nothing to say about them and `systemd-analyze security --offline` must rate both at most 2.0.
// Neither needs systemd running as PID 1. The units are checked byte for byte as shipped, inside a
// throwaway --root that holds a copy of this machine's stock units (sysinit.target and friends,
// which every service depends on) and a stand-in executable at /usr/local/bin/broadcast-queued,
// since verify insists that ExecStart= exists and is executable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SETTINGS, loadConfig } from '../src/config/load.js';
import { EXIT_CONFIG } from '../src/errors.js';

const systemdDir = fileURLToPath(new URL('../../systemd/', import.meta.url));
const UNIT = 'broadcast-queued.service';
const TEMPLATE = 'broadcast-queued@.service';
const INSTANCE = 'broadcast-queued@demo.service';
const MAX_EXPOSURE = 2.0;

let root = '';

test.before(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'bq-systemd-'));
  const stock = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((dir) => existsSync(path.join(dir, 'sysinit.target')));
  // Without systemd-analyze the stock units are missing too; let analyze() say what to install.
  if (stock) cpSync(stock, path.join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
  for (const unit of [UNIT, TEMPLATE]) cpSync(path.join(systemdDir, unit), path.join(root, 'etc/systemd/system', unit));
  mkdirSync(path.join(root, 'usr/local/bin'), { recursive: true });
  const bin = path.join(root, 'usr/local/bin/broadcast-queued');
  writeFileSync(bin, '#!/bin/sh\nexit 0\n');
  chmodSync(bin, 0o755);
});

test.after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

/** Runs systemd-analyze; a missing binary fails the test (CI installs systemd), never skips it. */
function analyze(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('systemd-analyze', ['--no-pager', ...args], { encoding: 'utf8', env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' }, timeout: 10_000 });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.unreachable('systemd-analyze is not installed: run `apt-get install systemd` (CI installs it); these tests do not skip');
  }
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function verify(unit: string): void {
  const { status, stdout, stderr } = analyze(['verify', '--man=no', `--root=${root}`, unit]);
  const ours = `${stdout}\n${stderr}`.split('\n').filter((line) => line.includes('broadcast-queued'));
  assert.equal(ours, [], `systemd-analyze verify ${unit} complained:\n${ours.join('\n')}`);
  assert.is(status, 0, `systemd-analyze verify ${unit} exited ${status}:\n${stderr}`);
}

function exposure(unit: string): number {
  const { status, stdout, stderr } = analyze(['security', '--offline=yes', `--root=${root}`, unit]);
  assert.is(status, 0, `systemd-analyze security ${unit} exited ${status}:\n${stderr}`);
  const ours = stderr.split('\n').filter((line) => line.includes('broadcast-queued'));
  assert.equal(ours, [], `systemd-analyze security ${unit} warned:\n${ours.join('\n')}`);
  const match = /Overall exposure level for (\S+): (\d+(?:\.\d+)?)/.exec(stdout);
  assert.ok(match, `no "Overall exposure level" line in:\n${stdout}`);
  assert.is(match![1], unit);
  return Number(match![2]);
}

/** The unit's directives as "Section/Key=value" lines, comments and blank lines dropped. */
function directives(file: string): string[] {
  let section = '';
  const lines: string[] = [];
  for (const raw of readFileSync(path.join(systemdDir, file), 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.startsWith('[')) section = line;
    else lines.push(`${section}${line}`);
  }
  return lines;
}

const value = (lines: string[], key: string): string[] => lines.filter((l) => l.replace(/^\[\w+\]/, '').startsWith(`${key}=`)).map((l) => l.slice(l.indexOf('=') + 1));

test('systemd-analyze verify has nothing to say about broadcast-queued.service', () => {
  verify(UNIT);
});

test('systemd-analyze verify has nothing to say about the template, as broadcast-queued@demo.service', () => {
  verify(INSTANCE);
});

for (const unit of [UNIT, INSTANCE]) {
  test(`systemd-analyze security --offline rates ${unit} at most ${MAX_EXPOSURE}`, () => {
    const score = exposure(unit);
    assert.ok(score <= MAX_EXPOSURE, `${unit}: overall exposure ${score} is above ${MAX_EXPOSURE}`);
  });
}

test('the template differs from the plain unit only in its per-instance lines', () => {
  const plain = directives(UNIT);
  const template = directives(TEMPLATE);
  assert.equal(template.filter((l) => l.includes('%i')), [
    '[Unit]Description=broadcast-queued Telegram broadcast daemon (%i)',
    '[Service]EnvironmentFile=/etc/broadcast-queued/%i.env',
    '[Service]StateDirectory=broadcast-queued/%i',
    '[Service]SyslogIdentifier=broadcast-queued-%i',
  ]);
  const perInstance = /^\[\w+\](Description|EnvironmentFile|StateDirectory|SyslogIdentifier)=/;
  assert.equal(template.filter((l) => !perInstance.test(l)), plain.filter((l) => !perInstance.test(l)));
});

test('the unit agrees with the daemon: config exit code, shutdown timeout, install path', () => {
  const unit = directives(UNIT);
  assert.equal(value(unit, 'ExecStart'), ['/usr/local/bin/broadcast-queued']);
  assert.equal(value(unit, 'RestartPreventExitStatus'), [String(EXIT_CONFIG)]);
  assert.equal(value(unit, 'KillMode'), ['mixed']);
  // TimeoutStopSec must leave PostgreSQL time to stop after the daemon's own shutdown timeout.
  const stopSec = Number(value(unit, 'TimeoutStopSec')[0]);
  assert.ok(stopSec >= loadConfig({}).shutdownTimeoutMs / 1000 + 5, `TimeoutStopSec=${stopSec} leaves too little after BQ_SHUTDOWN_TIMEOUT_SECONDS`);
  // V8's JIT needs writable-then-executable memory.
  assert.equal(value(unit, 'MemoryDenyWriteExecute'), []);
});

test('env.example lists every setting, and its commented defaults are the real defaults', () => {
  const text = readFileSync(path.join(systemdDir, 'env.example'), 'utf8');
  const assignments = [...text.matchAll(/^#?([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((m) => ({ name: m[1]!, value: m[2]! }));
  const listed = assignments.map((a) => a.name);
  // A secret can also come from a file: <VARIABLE>_FILE.
  const known = SETTINGS.flatMap((s) => (s.secret ? [s.env, `${s.env}_FILE`] : [s.env]));
  assert.equal(known.filter((name) => !listed.includes(name)), [], 'settings missing from env.example');
  assert.equal(listed.filter((name) => !known.includes(name)), [], 'env.example names variables the daemon does not read');
  assert.equal(listed.filter((name, i) => listed.indexOf(name) !== i), [], 'variables listed twice');
  for (const secret of SETTINGS.filter((s) => s.secret)) {
    assert.ok(new RegExp(`^${secret.env}=$`, 'm').test(text), `${secret.env} should be present and empty`);
  }
  // Uncommenting every line as it stands must change nothing.
  const everyLine = Object.fromEntries(assignments.map((a) => [a.name, a.value]));
  assert.equal(loadConfig(everyLine), loadConfig({}));
});

test('no unit suggests a database URL as a credential, which bqctl from a shell could not read', () => {
  for (const file of [UNIT, TEMPLATE, 'env.example']) {
    const text = readFileSync(path.join(systemdDir, file), 'utf8');
    assert.not.match(text, /LoadCredential=(BQ_LISTEN_)?DATABASE_URL:/, file);
  }
});

test.run();
