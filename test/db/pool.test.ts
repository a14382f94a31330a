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

test.run();
