import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isDatabaseUnavailable, isTransientDatabaseError } from '../../src/db/pool.js';

/** What node-postgres rejects with when the server's socket dies under a statement. */
function socketError(code: string): Error {
  return Object.assign(new Error(`read ${code}`), { code, errno: -104, syscall: 'read' });
}

test('an outcome write cut by a reset socket is retried, not turned into a failed job', () => {
  // chaos database, --stress seed 3101: a quick restart reset the recorder's connection and a send
  // job that had been delivered ended 'failed' with "result could not be stored: read ECONNRESET".
  for (const code of ['ECONNRESET', 'EPIPE', 'ETIMEDOUT']) assert.ok(isTransientDatabaseError(socketError(code)), code);
  assert.ok(isTransientDatabaseError(Object.assign(new Error('deadlock detected'), { code: '40P01' })));
  assert.not.ok(isTransientDatabaseError(Object.assign(new Error('invalid input syntax for type json'), { code: '22P02' })));
});

test("a handler's reset from the Bot API is not mistaken for the database going away", () => {
  assert.not.ok(isDatabaseUnavailable(socketError('ECONNRESET')));
});

test('a statement given the wrong number of parameters is a bug in the SQL, not the database going away', () => {
  // SQLSTATE 08P01 is in the connection-exception class, but the server sends it for this.
  const bind = Object.assign(new Error('bind message supplies 1 parameters, but prepared statement "" requires 2'), { code: '08P01' });
  assert.not.ok(isDatabaseUnavailable(bind));
  assert.not.ok(isTransientDatabaseError(bind));
  for (const code of ['08000', '08001', '08003', '08006', '57P01', '53300']) assert.ok(isDatabaseUnavailable(Object.assign(new Error('away'), { code })), code);
});

test.run();
